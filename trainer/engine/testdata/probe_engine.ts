/**
 * Test fixture for ../backend_test.ts: initialises the engine with the JSON options in argv[2]
 * in this fresh process, computes one conv filter gradient, prints {info, grad} as JSON.
 */
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../tfjs_backend.ts";

const info = await initEngine({ ...JSON.parse(process.argv[2] ?? "{}"), log: () => {} });
const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 3 }, (_, i) => Math.sin(i)), [2, 9, 9, 3]);
const w = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 3, 4]);
const g = tf.grad((w: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, w as tf.Tensor4D, 2, "same"))))(
  w,
);
console.log(JSON.stringify({ info, grad: Array.from(g.dataSync()) }));
