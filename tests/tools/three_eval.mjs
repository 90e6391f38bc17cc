// Play a .glb with three.js (GLTFLoader + AnimationMixer) and print the skinned, morphed vertex
// positions (world space) at the given times as JSON: {"frames": [[[x,y,z], ...] per time], ...}.
// Usage: node three_eval.mjs FILE.glb '[0, 0.04, ...]'
import fs from "node:fs";
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

const [file, timesJson] = process.argv.slice(2);
const bytes = fs.readFileSync(file);
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
new GLTFLoader().parse(buffer, "", (gltf) => {
  const scene = gltf.scene;
  let mesh = null;
  scene.traverse((o) => { if (o.isSkinnedMesh) mesh = o; });
  const mixer = new THREE.AnimationMixer(scene);
  mixer.clipAction(gltf.animations[0]).play();
  const out = { names: Object.keys(mesh.morphTargetDictionary), duration: gltf.animations[0].duration, frames: [] };
  const v = new THREE.Vector3();
  for (const t of JSON.parse(timesJson)) {
    mixer.setTime(t);
    scene.updateMatrixWorld(true);
    const n = mesh.geometry.attributes.position.count;
    const rows = new Array(n);
    for (let i = 0; i < n; i++) {
      mesh.getVertexPosition(i, v);
      v.applyMatrix4(mesh.matrixWorld);
      rows[i] = [v.x, v.y, v.z];
    }
    out.frames.push(rows);
  }
  process.stdout.write(JSON.stringify(out));
}, (err) => { process.stderr.write(String(err) + "\n"); process.exit(2); });
