// Validate a .glb / .gltf with the Khronos glTF validator; prints the JSON report on stdout.
// Usage: node validate_gltf.js FILE   (external .bin files are read beside FILE)
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

const file = process.argv[2];
const data = fs.readFileSync(file);
validator.validateBytes(new Uint8Array(data), {
  uri: path.basename(file),
  maxIssues: 100,
  externalResourceFunction: (uri) => new Promise((resolve, reject) => {
    fs.readFile(path.resolve(path.dirname(file), decodeURIComponent(uri)), (err, buf) => {
      if (err) { reject(err.toString()); } else { resolve(new Uint8Array(buf)); }
    });
  }),
}).then((report) => {
  process.stdout.write(JSON.stringify(report));
}, (err) => {
  process.stderr.write(String(err) + "\n");
  process.exit(2);
});
