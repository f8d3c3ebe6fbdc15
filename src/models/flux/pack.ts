// 2x2 latent packing (reference sampling.py `prepare` / `unpack`) and position ids.
//   pack:   "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph = pw = 2
//   unpack: the inverse.
// img_ids[b, r*w + c] = (0, r, c); txt_ids are zeros.
import { tf, type Tensor } from '../../engine/tf.js';

/** [B, C, H, W] (H, W even) -> [B, (H/2)(W/2), 4C]. */
export function packLatents(x: Tensor): Tensor {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (x.rank !== 4 || h % 2 || w % 2) throw new Error(`packLatents: need [B, C, H, W] with even H, W; got [${x.shape.join(', ')}]`);
  return tf.tidy(() =>
    x
      .reshape([b, c, h / 2, 2, w / 2, 2])
      .transpose([0, 2, 4, 1, 3, 5])
      .reshape([b, (h / 2) * (w / 2), c * 4]),
  );
}

/** [B, (H/2)(W/2), 4C] -> [B, C, H, W]; `height` and `width` are the latent H and W. */
export function unpackLatents(x: Tensor, height: number, width: number): Tensor {
  const [b, l, d] = x.shape as [number, number, number];
  const h = height / 2;
  const w = width / 2;
  if (x.rank !== 3 || !Number.isInteger(h) || !Number.isInteger(w) || h * w !== l || d % 4) {
    throw new Error(`unpackLatents: [${x.shape.join(', ')}] is not a packing of a ${height}x${width} latent`);
  }
  const c = d / 4;
  return tf.tidy(() => x.reshape([b, h, w, c, 2, 2]).transpose([0, 3, 1, 4, 2, 5]).reshape([b, c, height, width]));
}

/** Image token ids [B, h*w, 3] for a packed grid of h x w tokens: (0, row, col). */
export function makeImgIds(batch: number, h: number, w: number): Tensor {
  const data = new Float32Array(h * w * 3);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      data[(r * w + c) * 3 + 1] = r;
      data[(r * w + c) * 3 + 2] = c;
    }
  }
  return tf.tidy(() => tf.tile(tf.tensor3d(data, [1, h * w, 3]), [batch, 1, 1]));
}

/** Text token ids [B, T, 3]: zeros. */
export function makeTxtIds(batch: number, length: number): Tensor {
  return tf.zeros([batch, length, 3]);
}
