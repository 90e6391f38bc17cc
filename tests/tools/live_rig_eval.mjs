// The live page's mapping applied in three.js: load the rest-pose head the server hands the page,
// apply motion frames with the page's own rig.js (morph influences, joint rotations and
// translations, as the page does) and print the skinned, morphed vertices (world space) as JSON.
// Usage: node live_rig_eval.mjs HEAD.glb RIG_JS_PATH '[[106 numbers], ...]'
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

const [file, rigPath, framesJson] = process.argv.slice(2);
const { applyFrame, headOf } = await import(pathToFileURL(rigPath).href);
const bytes = fs.readFileSync(file);
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
new GLTFLoader().parse(buffer, "", (gltf) => {
  const head = headOf(gltf);
  const out = { frames: [] };
  const v = new THREE.Vector3();
  for (const motion of JSON.parse(framesJson)) {
    applyFrame(head, motion);
    gltf.scene.updateMatrixWorld(true);
    const n = head.mesh.geometry.attributes.position.count;
    const rows = new Array(n);
    for (let i = 0; i < n; i++) {
      head.mesh.getVertexPosition(i, v);
      v.applyMatrix4(head.mesh.matrixWorld);
      rows[i] = [v.x, v.y, v.z];
    }
    out.frames.push(rows);
  }
  process.stdout.write(JSON.stringify(out));
}, (e) => { console.error(e); process.exit(1); });
