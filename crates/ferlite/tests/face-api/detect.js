// face-api's own SSD MobileNet v1 on raw RGB files, to get reference boxes for tests:
//   npm install --prefix tests/face-api --no-save @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
//   python3 -c "from PIL import Image; im = Image.open('photo.jpg').convert('RGB'); open('photo.rgb', 'wb').write(im.tobytes()); print(im.size)"
//   (cd tests/face-api && node detect.js W H /abs/path/photo.rgb [W H file ...])
// Prints one JSON line per file: face-api's boxes (minConfidence 0.5, its default) and scores.
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const fs = require('fs');
(async () => {
  await tf.setBackend('cpu'); await tf.ready();
  await faceapi.nets.ssdMobilenetv1.loadFromDisk('node_modules/@vladmandic/face-api/model');
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 3) {
    const [w, h, file] = [Number(args[i]), Number(args[i + 1]), args[i + 2]];
    const t = tf.tensor3d(new Uint8Array(fs.readFileSync(file)), [h, w, 3], 'int32');
    const dets = await faceapi.detectAllFaces(t, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 }));
    console.log(JSON.stringify({ file, faces: dets.map(d => ({ x: d.box.x, y: d.box.y, w: d.box.width, h: d.box.height, score: d.score })) }));
    t.dispose();
  }
})();
