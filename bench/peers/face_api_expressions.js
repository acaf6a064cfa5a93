// face-api's expression net (`@vladmandic/face-api` 1.7.15, faceExpressionNet, MIT) on labelled
// FER2013 face crops: the peer's accuracy on the same files ferlite is evaluated on.
//   npm ci --prefix bench/peers --no-audit --no-fund --ignore-scripts   (package.json pins the four below)
//   node bench/peers/face_api_expressions.js ../shared/data/fer2013/val
//   node bench/peers/face_api_expressions.js --latency     # one 48x48 face at a time (wasm: 1 thread)
//   (TFJS_BACKEND=cpu: tfjs's pure-JS backend, ~20x slower; the same confusion matrix on 35 faces)
// Each 48x48 gray JPEG goes in as a 48x48 RGB image (face-api resizes it to its 112x112 input);
// the face is the whole crop, as for `ferlite evaluate`. Prints one JSON line: accuracy, per-class
// recall and the confusion matrix (rows: true class, ferlite's class order).
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const jpeg = require('jpeg-js');
const fs = require('fs');
const path = require('path');

const CLASSES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
// face-api's names for the same seven.
const FACE_API = { angry: 'angry', disgust: 'disgusted', fear: 'fearful', happy: 'happy', sad: 'sad', surprise: 'surprised', neutral: 'neutral' };

// Median and range of one face's expressions (batch 1, the same call as below), after a warm-up.
async function latency(repeats = 200) {
  const face = tf.zeros([48, 48, 3], 'int32');
  for (let i = 0; i < 20; i++) await faceapi.nets.faceExpressionNet.predictExpressions(face);
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint();
    await faceapi.nets.faceExpressionNet.predictExpressions(face);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ model: 'face-api 1.7.15 faceExpressionNet', backend: tf.getBackend(), batch: 1,
    median_ms: times[repeats >> 1], min_ms: times[0], max_ms: times[repeats - 1] }));
}

(async () => {
  await tf.setBackend(process.env.TFJS_BACKEND || 'wasm'); await tf.ready();
  await faceapi.nets.faceExpressionNet.loadFromDisk(path.join(__dirname, 'node_modules/@vladmandic/face-api/model'));
  const root = process.argv[2];
  if (root === '--latency') return latency();
  const confusion = CLASSES.map(() => CLASSES.map(() => 0));
  for (const [truth, name] of CLASSES.entries()) {
    for (const file of fs.readdirSync(path.join(root, name)).sort()) {
      const img = jpeg.decode(fs.readFileSync(path.join(root, name, file)), { useTArray: true, formatAsRGBA: false });
      const input = tf.tensor3d(img.data, [img.height, img.width, img.data.length / (img.width * img.height)], 'int32');
      const rgb = input.shape[2] === 3 ? input : tf.tile(input.slice([0, 0, 0], [-1, -1, 1]), [1, 1, 3]);
      const scores = await faceapi.nets.faceExpressionNet.predictExpressions(rgb);
      const predicted = CLASSES.reduce((best, c, k) => (scores[FACE_API[c]] > scores[FACE_API[CLASSES[best]]] ? k : best), 0);
      confusion[truth][predicted] += 1;
      tf.dispose([input, rgb]);
    }
  }
  const total = confusion.flat().reduce((a, b) => a + b, 0);
  const right = CLASSES.reduce((sum, _, k) => sum + confusion[k][k], 0);
  const recall = Object.fromEntries(CLASSES.map((c, k) => [c, confusion[k][k] / confusion[k].reduce((a, b) => a + b, 0)]));
  console.log(JSON.stringify({ model: 'face-api 1.7.15 faceExpressionNet', faces: total, accuracy: right / total, recall, confusion }));
})();
