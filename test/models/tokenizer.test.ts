/**
 * CLIP BPE tokenizer. The expected ids were produced by a Python port of OpenAI CLIP's
 * simple_tokenizer.py (same code, `regex` module, the same ftfy approximation as the TypeScript; see
 * src/models/text/tokenizer.ts) and cross-checked against this implementation on ~100k strings:
 * hand-written cases, random mixed-script/emoji/entity/control-character strings, and every
 * assigned Unicode 14 code point. Cases marked "ftfy" depend on the ftfy approximation (fixes real
 * ftfy also makes); every other case is independent of ftfy.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  CLIP_VOCAB_RELPATH,
  ClipTokenizer,
  bytesToUnicode,
  cleanText,
  defaultVocabPath,
  htmlUnescape,
  packageRoot,
  pretokenize,
} from '../../src/models/text/tokenizer.js';

const tok = ClipTokenizer.load();

/** [text, CLIP SimpleTokenizer.encode(text)], from the Python reference. */
const CASES: ReadonlyArray<readonly [string, readonly number[]]> = [
  ["a photo of a cat", [320, 1125, 539, 320, 2368]],
  ["an emoji of a kitchen knife in twemoji style", [550, 16327, 539, 320, 4485, 8960, 530, 18365, 617, 2697, 1844]],
  ["an emoji of a kitchen knife in noto style", [550, 16327, 539, 320, 4485, 8960, 530, 578, 531, 1844]],
  ["fluent-emoji-flat style", [30025, 268, 16327, 268, 6313, 1844]],
  ["a dagger, a bomb, a pill, a syringe and a cigarette", [320, 34251, 267, 320, 6331, 267, 320, 19226, 267, 320, 974, 81, 7071, 537, 320, 18548]],
  ["superhero vampire zombie water pistol", [14049, 13220, 11819, 1573, 20480]],
  ["A PHOTO OF A CAT!!!", [320, 1125, 539, 320, 2368, 995]],
  ["it's a cat's toy, isn't it? they're we've I'm you'll he'd", [585, 568, 320, 2368, 568, 5988, 267, 2923, 713, 585, 286, 889, 982, 649, 1200, 328, 880, 592, 1342, 797, 1896]],
  ["rock'n'roll", [2172, 262, 333, 262, 3341]],
  ["'''s'", [6, 8445, 338, 262]],
  ["café naïve résumé Zoë", [15304, 1097, 35689, 563, 29106, 7054, 4166, 4397, 40520]],
  ["e\u0301cole", [3459, 8166]], // ftfy
  ["1234567890 3.14159 1,000,000", [272, 273, 274, 275, 276, 277, 278, 279, 280, 271, 274, 269, 272, 275, 272, 276, 280, 272, 267, 271, 271, 271, 267, 271, 271, 271]],
  ["  leading   and    trailing   spaces   ", [3833, 537, 37427, 9006]],
  ["tabs\tand\nnewlines\r\nhere", [29163, 537, 1218, 3418, 763]],
  ["supercalifragilisticexpialidocious", [1642, 2857, 13093, 2076, 5868, 26850, 835, 639, 38466]],
  ["pneumonoultramicroscopicsilicovolcanoconiosis", [28714, 749, 20253, 9800, 535, 532, 1065, 901, 1556, 13697, 9916, 78, 39031, 13903]],
  ["emoji 😀🔪💣💊💉🚬 in text", [16327, 12832, 47078, 36862, 837, 232, 44316, 2730, 361, 530, 4160]],
  ["👩\u200d👩\u200d👧\u200d👦 family", [26304, 26304, 48938, 4244, 964, 355, 1315]],
  ["日本語のテキスト", [39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486]],
  ["Ελληνικά ΟΔΟΣ", [138, 113, 138, 119, 138, 119, 138, 115, 138, 121, 138, 117, 138, 118, 138, 361, 138, 123, 138, 112, 138, 123, 139, 480]],
  ["İstanbul", [328, 16384, 11231]],
  ["&amp; &lt;tag&gt; &quot;q&quot; &#39;apos&#39; &copy2020", [261, 283, 3640, 285, 257, 336, 257, 262, 4089, 338, 262, 5811, 273, 271, 273, 271]],
  ["<|startoftext|>hello<|endoftext|>", [49406, 3306, 49407]],
  ["don’t stop — it’s “quoted”", [847, 713, 1691, 2005, 585, 568, 257, 27706, 257]], // ftfy
  ["ﬁsh ﬂower", [2759, 4055]], // ftfy
  ["ＦＵＬＬＷＩＤＴＨ text", [9407, 23571, 4160]], // ftfy
  ["$100 €50 £20", [259, 272, 271, 271, 6309, 276, 271, 1950, 273, 271]],
  ["email@example.com https://example.com/path?q=1", [4462, 287, 6228, 269, 2464, 30901, 12441, 6228, 269, 2464, 270, 5035, 286, 336, 284, 272]],
  ["C++ C# F#", [322, 19056, 322, 258, 325, 258]],
  ["x²+y²=z² ½", [343, 41175, 266, 344, 41175, 284, 345, 41175, 33613]],
  ["", []],
];

test('vocabulary: found at the package root, 49408 ids, specials', () => {
  assert.equal(defaultVocabPath(), join(packageRoot(), CLIP_VOCAB_RELPATH));
  assert.ok(existsSync(defaultVocabPath()));
  assert.equal(JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).name, 'mce');
  assert.ok(existsSync(join(packageRoot(), 'assets', 'tokenizer', 'LICENSE-openai-CLIP')));
  assert.equal(ClipTokenizer.load(), tok, 'load() is a cached singleton');
  assert.equal(tok.vocabSize, 49408);
  assert.equal(tok.sot, 49406);
  assert.equal(tok.eot, 49407);
  assert.equal(tok.idToToken(49406), '<|startoftext|>');
  assert.equal(tok.idToToken(49407), '<|endoftext|>');
  assert.equal(tok.idToToken(0), '!');
  assert.equal(tok.idToToken(256), '!</w>');
  assert.equal(tok.idToToken(512), 'in'); // first merge: "i n"
  assert.equal(tok.tokenToId('cat</w>'), 2368);
  assert.throws(() => tok.idToToken(49408), RangeError);
});

test('bytes_to_unicode: printable bytes map to themselves, the rest to U+0100..', () => {
  const m = bytesToUnicode();
  assert.equal(m.size, 256);
  assert.equal(m.get(0x21), '!');
  assert.equal(m.get(0x7e), '~');
  assert.equal(m.get(0x00), '\u0100');
  assert.equal(m.get(0x20), '\u0120');
  assert.equal(m.get(0xad), '\u0143');
  assert.deepEqual([...m.keys()].slice(0, 3), [0x21, 0x22, 0x23]);
});

test('"a photo of a cat" gives CLIP\'s ids', () => {
  const row = tok.tokenize('a photo of a cat');
  assert.ok(row instanceof Int32Array);
  assert.equal(row.length, 77);
  assert.deepEqual([...row.slice(0, 7)], [49406, 320, 1125, 539, 320, 2368, 49407]);
  assert.ok(row.slice(7).every((v) => v === 0), 'zero padding');
  assert.deepEqual(tok.encode('a photo of a cat'), [320, 1125, 539, 320, 2368]);
});

test('encode matches the Python reference on varied text', () => {
  for (const [text, ids] of CASES) {
    assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
  }
  // The BPE cache must not change results: a second pass gives the same ids.
  for (const [text, ids] of CASES) assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
});

test('cleaning: ftfy approximation, html.unescape twice, Python whitespace, lower()', () => {
  assert.equal(cleanText('  A   PHOTO\t\n of\u3000A  Cat  '), 'a photo of a cat');
  assert.equal(cleanText('&amp;lt;b&amp;gt;'), '<b>'); // unescaped twice, as CLIP
  assert.equal(cleanText('don\u2019t \u201cquote\u201d'), 'don\'t "quote"');
  assert.equal(cleanText('\ufb01sh \uff21\uff22'), 'fish ab');
  assert.equal(cleanText('e\u0301'), '\u00e9'); // NFC
  assert.equal(cleanText('\x1b[31mred\x1b[0m\x07'), 'red');
  assert.equal(cleanText('a\u00a0\u2003b\x85c'), 'a b c');
  assert.equal(cleanText('\ufeff'), '');
  assert.deepEqual(pretokenize("it's <|endoftext|> x2 ..!"), ['it', "'s", '<|endoftext|>', 'x', '2', '..!']);
  assert.deepEqual(pretokenize('x\u0345y'), ['x', 'y'], 'U+0345 matches nothing, as in Python regex with IGNORECASE');
});

test('htmlUnescape follows Python html.unescape', () => {
  assert.equal(htmlUnescape('&amp; &lt;&gt; &quot; &#39; &#x27; &apos;'), '& <> " \' \' \'');
  assert.equal(htmlUnescape('&ampx &copy2020 &amp'), '&x \u00a92020 &');
  assert.equal(htmlUnescape('&#128;&#129;&#0;&#1;&#x110000;&#xD800;&#65;'), '\u20ac\x81\ufffd\ufffd\ufffdA');
  assert.equal(htmlUnescape('&nosuch; & &#; &#x;'), '&nosuch; & &#; &#x;');
  assert.equal(htmlUnescape('&eacute;&Eacute;&hellip;&mdash;'), '\u00e9\u00c9\u2026\u2014');
});

test('decode: CLIP semantics and round trip', () => {
  assert.equal(tok.decode([49406, 320, 1125, 539, 320, 2368, 49407, 0, 0]), '<|startoftext|>a photo of a cat <|endoftext|>!!');
  assert.equal(tok.decode(tok.tokenize('a photo of a cat'), { skipSpecial: true }), 'a photo of a cat ');
  assert.equal(tok.decode([49406, 3306, 49407]), '<|startoftext|>hello <|endoftext|>');
  assert.equal(tok.decode([256, 300, 258]), '! M # ');
  assert.equal(tok.decode([127]), '\ufffd', 'a lone UTF-8 lead byte becomes U+FFFD');
  assert.equal(tok.decode([127, 137, 483]), '\ufffd\u0345 ');
  assert.equal(tok.decode([]), '');
  assert.throws(() => tok.decode([49408]), RangeError);
  assert.throws(() => tok.decode([-1]), RangeError);
  for (const [text, ids] of CASES) {
    if (ids.length === 0 || text.includes('<|')) continue;
    assert.equal(tok.decode(ids), pretokenize(cleanText(text)).join(' ') + ' ', JSON.stringify(text));
  }
});

test('truncation keeps EOT last; exact fit is not truncated; truncate:false throws', () => {
  const long = 'a '.repeat(100);
  const row = tok.tokenize(long);
  assert.equal(row.length, 77);
  assert.equal(row[0], 49406);
  assert.ok(row.slice(1, 76).every((v) => v === 320));
  assert.equal(row[76], 49407);
  const fit = tok.tokenize('a '.repeat(75));
  assert.equal(fit[75], 320);
  assert.equal(fit[76], 49407);
  const over = tok.tokenize('a '.repeat(76));
  assert.equal(over[75], 320);
  assert.equal(over[76], 49407);
  assert.throws(() => tok.tokenize('a '.repeat(76), 77, { truncate: false }), RangeError);
  assert.deepEqual([...tok.tokenize('a photo of a cat', 4)], [49406, 320, 1125, 49407]);
  assert.deepEqual([...tok.tokenize('a photo of a cat', 2)], [49406, 49407]);
  assert.throws(() => tok.tokenize('x', 1), RangeError);
});

test('tokenizeBatch is row-major tokenize()', () => {
  const texts = ['a photo of a cat', '', 'an emoji of a kitchen knife in twemoji style', 'a '.repeat(90)];
  const batch = tok.tokenizeBatch(texts, 16);
  assert.equal(batch.length, 4 * 16);
  texts.forEach((t, i) => assert.deepEqual([...batch.slice(i * 16, (i + 1) * 16)], [...tok.tokenize(t, 16)]));
  assert.deepEqual([...batch.slice(16, 19)], [49406, 49407, 0]);
});

test('tokenizes 10,000 captions in one batch, row by row equal to tokenize()', () => {
  const things = ['kitchen knife', 'dagger', 'water pistol', 'bomb', 'pill', 'syringe', 'cigarette', 'superhero',
    'vampire', 'zombie', 'red apple', 'grinning face', 'teddy bear', 'hammer and wrench', 'hot beverage'];
  const styles = ['twemoji', 'noto', 'fluent emoji flat'];
  const captions: string[] = [];
  for (let i = 0; captions.length < 10_000; i++) {
    const t = things[i % things.length]!;
    const s = styles[Math.floor(i / things.length) % styles.length]!;
    captions.push(i % 2 ? `an emoji of a ${t} in ${s} style, number ${i}` : `A ${t.toUpperCase()} (${s}) #${i}`);
  }
  // Speed is measured by hand, not asserted (no timing in tests): ~25-50 ms for these 10k.
  const out = tok.tokenizeBatch(captions);
  assert.equal(out.length, 10_000 * 77);
  for (let i = 0; i < 10_000; i += 997) assert.deepEqual(out.subarray(i * 77, (i + 1) * 77), tok.tokenize(captions[i]!));
});
