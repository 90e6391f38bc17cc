// Motion frame -> glTF animation values, exactly as `artalk export` maps them
// (artalk_core/export.py: frame_keys, _rotations, _translations), in float64.
//
// A frame is 106 numbers: FLAME expression [0:100], global rotation [100:103], jaw rotation
// [103:106] (axis-angle). The head's glTF has 136 morph targets (exp_00..exp_99, then
// pose_<joint>_<r><c> for neck, jaw, left_eye, right_eye) and 5 joint nodes
// (global, neck, jaw, left_eye, right_eye). `rig` is the .glb's asset.extras.live_rig:
// {joints: [5][3] rest joints, parents: [5], joint_exp: [5][3][100] (absent when expressions
// do not move the joints)}.

export const JOINT_NAMES = ["global", "neck", "jaw", "left_eye", "right_eye"];
export const TARGET_NAMES = (() => {
  const names = [];
  for (let i = 0; i < 100; i++) names.push(`exp_${String(i).padStart(2, "0")}`);
  for (const j of JOINT_NAMES.slice(1)) for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) names.push(`pose_${j}_${r}${c}`);
  return names;
})();

// FLAME's Rodrigues (artalk_core/flame/lbs.py batch_rodrigues): the angle is |r + 1e-8|.
function angleOf(r) {
  const a = r[0] + 1e-8, b = r[1] + 1e-8, c = r[2] + 1e-8;
  return Math.sqrt(a * a + b * b + c * c);
}

export function rodrigues(r) {
  const angle = angleOf(r);
  const x = r[0] / angle, y = r[1] / angle, z = r[2] / angle;
  const s = Math.sin(angle), k = 1 - Math.cos(angle);
  const K = [[0, -z, y], [z, 0, -x], [-y, x, 0]];
  const R = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let kk = 0;
      for (let m = 0; m < 3; m++) kk += K[i][m] * K[m][j];
      R[i][j] += s * K[i][j] + k * kk;
    }
  }
  return R;
}

// Unit quaternion [x, y, z, w] of the same rotation (export's _rotations).
export function quaternion(r) {
  const angle = angleOf(r);
  const s = Math.sin(angle / 2);
  const q = [r[0] / angle * s, r[1] / angle * s, r[2] / angle * s, Math.cos(angle / 2)];
  const n = Math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  return q.map((v) => v / n);
}

// {weights: [136], root: [x,y,z,w], jaw: [x,y,z,w], translations: [5][3] | null}
export function frameKeys(rig, motion) {
  const pose = [motion.slice(100, 103), [0, 0, 0], motion.slice(103, 106), [0, 0, 0], [0, 0, 0]];
  const mats = pose.map((r) => rodrigues(r));
  const weights = new Array(136);
  for (let i = 0; i < 100; i++) weights[i] = motion[i];
  let w = 100;
  for (let j = 1; j < 5; j++) {
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) weights[w++] = mats[j][r][c] - (r === c ? 1 : 0);
  }
  let translations = null;
  const jexp = rig.joint_exp;
  if (jexp && jexp.length) {
    // J(t) = J(0) + joint_exp . exp; d = J(0) - J(t); node j: J_j(t) - J_p(t) + R_j d_j - d_p (root: J_0(t) + R_0 d_0)
    const jt = rig.joints.map((j0, j) => j0.map((v, k) => {
      let acc = 0;
      for (let l = 0; l < 100; l++) acc += jexp[j][k][l] * motion[l];
      return v + acc;
    }));
    const d = rig.joints.map((j0, j) => j0.map((v, k) => v - jt[j][k]));
    translations = rig.parents.map((p, j) => {
      const rd = [0, 1, 2].map((a) => mats[j][a][0] * d[j][0] + mats[j][a][1] * d[j][1] + mats[j][a][2] * d[j][2]);
      return [0, 1, 2].map((a) => (p < 0 ? jt[j][a] + rd[a] : jt[j][a] - jt[p][a] + rd[a] - d[p][a]));
    });
  }
  return { weights, root: quaternion(pose[0]), jaw: quaternion(pose[2]), translations };
}

// Apply a frame to a three.js head: `head` = {mesh, bones: {name: Bone}, targetIndex: [136], rig}.
export function applyFrame(head, motion) {
  const keys = frameKeys(head.rig, motion);
  const infl = head.mesh.morphTargetInfluences;
  for (let i = 0; i < 136; i++) infl[head.targetIndex[i]] = keys.weights[i];
  head.bones.global.quaternion.set(...keys.root);
  head.bones.jaw.quaternion.set(...keys.jaw);
  if (keys.translations) {
    JOINT_NAMES.forEach((name, j) => head.bones[name].position.set(...keys.translations[j]));
  }
  return keys;
}

// The head of a loaded glTF (GLTFLoader's result): its skinned mesh, joints and mapping data.
export function headOf(gltf) {
  let mesh = null;
  gltf.scene.traverse((o) => { if (o.isSkinnedMesh && !mesh) mesh = o; });
  if (!mesh) throw new Error("the head file has no skinned mesh");
  const bones = {};
  for (const b of mesh.skeleton.bones) bones[b.name] = b;
  for (const name of JOINT_NAMES) if (!bones[name]) throw new Error(`the head file has no joint ${name}`);
  const dict = mesh.morphTargetDictionary;
  const targetIndex = TARGET_NAMES.map((n) => {
    if (!(n in dict)) throw new Error(`the head file has no morph target ${n}`);
    return dict[n];
  });
  const rig = (gltf.parser.json.asset.extras || {}).live_rig;
  if (!rig) throw new Error("the head file has no live_rig extras (not made by artalk serve)");
  return { mesh, bones, targetIndex, rig };
}
