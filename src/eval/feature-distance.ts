// "feature distance (emoji classifier, LPIPS-style)": the perceptual distance of LPIPS (Zhang et
// al. 2018) with mce's emoji classifier as the network and no learned layer weights. For each
// backbone stage, the activated feature map of both images is unit-normalised over channels at
// every position; the distance is the squared difference, averaged over positions, then over
// stages. 0 for identical images, at most 4. It is not LPIPS (no AlexNet/VGG, no calibration on
// human judgements), so it is never called that.
import { tf, type Tensor } from '../engine/tf.js';
import { silu } from '../engine/ops.js';
import { groupNormNHWC, type BackboneConfig, type Weights } from '../models/classifier/backbone.js';
import type { Classifier } from '../models/classifier/classifier.js';
import { imagesToInput, type RgbImage } from '../models/classifier/images.js';

export const FEATURE_DISTANCE_NAME = 'feature distance (emoji classifier, LPIPS-style)';

/**
 * The activated output of every stage of the classifier's backbone, [B, S_i, S_i, w_i]. The same
 * computation as backboneForward, stopping to look after each stage instead of pooling at the end.
 */
export function stageMaps(cfg: BackboneConfig, p: Weights, x: Tensor): Tensor[] {
  return tf.tidy(() => {
    const act = (h: Tensor, n: string): Tensor => silu(groupNormNHWC(h, cfg.groups, p[`${n}.weight`]!, p[`${n}.bias`]!));
    const conv = (h: Tensor, n: string, stride: number): Tensor => tf.add(tf.conv2d(h as tf.Tensor4D, p[`${n}.weight`] as tf.Tensor4D, stride, 'same'), p[`${n}.bias`]!);
    let h = conv(x, 'stem', 1);
    const maps: Tensor[] = [];
    for (let s = 0; s < cfg.widths.length; s++) {
      if (s > 0) h = conv(act(h, `stages.${s}.down.norm`), `stages.${s}.down`, 2);
      for (let b = 0; b < cfg.depths[s]!; b++) h = tf.add(h, conv(act(h, `stages.${s}.blocks.${b}.norm`), `stages.${s}.blocks.${b}.conv`, 1));
      maps.push(s === cfg.widths.length - 1 ? act(h, 'final.norm') : silu(h));
    }
    return maps;
  });
}

/** The distance of each pair (a[i], b[i]). */
export function featureDistance(clf: Classifier, a: readonly RgbImage[], b: readonly RgbImage[]): number[] {
  if (a.length !== b.length) throw new Error(`featureDistance: ${a.length} vs ${b.length} images`);
  if (a.length === 0) return [];
  const xa = imagesToInput(a, clf.size);
  const xb = imagesToInput(b, clf.size);
  const d = tf.tidy(() => {
    const fa = stageMaps(clf.config.backbone, clf.weights, xa);
    const fb = stageMaps(clf.config.backbone, clf.weights, xb);
    const unit = (f: Tensor): Tensor => tf.div(f, tf.add(tf.sqrt(tf.sum(tf.square(f), 3, true)), 1e-10));
    const per = fa.map((f, i) => tf.mean(tf.sum(tf.square(tf.sub(unit(f), unit(fb[i]!))), 3), [1, 2]));
    return tf.div(tf.addN(per), per.length);
  });
  const out = Array.from(d.dataSync());
  tf.dispose([xa, xb, d]);
  return out;
}
