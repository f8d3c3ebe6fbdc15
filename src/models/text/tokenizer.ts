/**
 * CLIP byte-level BPE tokenizer: a TypeScript port of OpenAI CLIP's `clip/simple_tokenizer.py`.
 *
 * It gives the same ids as CLIP's `SimpleTokenizer` and `clip.tokenize(..., truncate=True)`:
 * the same bytes_to_unicode table, the same vocabulary (256 byte symbols, the same with `</w>`,
 * merges `[1 : 49152-256-2+1]` of the vocabulary file, then `<|startoftext|>` and `<|endoftext|>`:
 * 49408 ids), the same pre-tokenising pattern and the same BPE merge loop.
 *
 * Text cleaning. CLIP cleans with `ftfy.fix_text`, `html.unescape` twice, whitespace collapsing and
 * `lower()`. ftfy is not available here, so `fix_text` is APPROXIMATED by the ftfy-6 default fixes that
 * need no data tables (applied in ftfy's order, repeated until nothing changes): remove ANSI terminal
 * escapes; decode `&...;` entities when the text has no `<`; break Latin ligatures (ﬁ -> fi, ĳ -> ij,
 * ...); fullwidth/halfwidth forms -> standard width (U+3000 -> space); curly quotes -> straight quotes;
 * lone surrogates -> U+FFFD; remove control characters (C0 except tab/LF/FF/CR, DEL, U+206A-206F,
 * U+FEFF, U+FFF9-FFFC); NFC. Not reproduced: ftfy's mojibake repair (`fix_encoding`, C1-control
 * re-decoding) and its upper-cased entity names (`&EACUTE;`). For ordinary text (anything that is not
 * mojibake) the ids equal CLIP's.
 *
 * `html.unescape` is Python's algorithm (numeric references with its replacement rules, longest-prefix
 * matching of the legacy names without `;`), over a table of named entities that holds every name that
 * may appear without `;`, every HTML 4 name and `&apos;`, with HTML5's values. Other HTML5-only names
 * (`&check;`, ...) are left as they are; Python would decode them.
 *
 * Whitespace uses Python's sets, not JavaScript's `\s`: the `regex` module's `\s` for collapsing and
 * `str.isspace()` for `strip()`. The pattern is matched with the `u` flag only, and IGNORECASE is
 * reproduced by hand. On text that is already lower-cased, Python's IGNORECASE changes exactly two
 * things (checked over every code point): `s` also matches U+017F (long s), which the pattern spells
 * `[sſ]`; and U+0345 (a combining mark that case-folds to a letter) matches no alternative at all, so
 * it is dropped, which the pattern gets by leaving it out of the last class. (JavaScript's `/iu` would
 * instead treat U+0345 as a letter.)
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export const CLIP_VOCAB_FILENAME = 'clip-bpe-simple-vocab-16e6.txt.gz';
/** Where the vocabulary ships, relative to the package root. */
export const CLIP_VOCAB_RELPATH = join('assets', 'tokenizer', CLIP_VOCAB_FILENAME);
export const CLIP_VOCAB_SIZE = 49408;
export const CLIP_SOT = 49406;
export const CLIP_EOT = 49407;
export const CLIP_CONTEXT_LENGTH = 77;
const N_MERGES = 49152 - 256 - 2; // 48894

// ---------------------------------------------------------------------------------------------
// Locating the vocabulary

/** The package root: the nearest folder above this module that holds a package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`tokenizer: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** `<package root>/assets/tokenizer/clip-bpe-simple-vocab-16e6.txt.gz` (same from src/ and dist/). */
export function defaultVocabPath(): string {
  return join(packageRoot(), CLIP_VOCAB_RELPATH);
}

// ---------------------------------------------------------------------------------------------
// bytes_to_unicode

/** BYTE_ORDER[i] = the byte whose symbol has vocabulary id i (and i + 256 with `</w>`). */
const BYTE_ORDER: number[] = [];
/** BYTE_CHAR[b] = the printable character that stands for byte b. */
const BYTE_CHAR: string[] = new Array<string>(256);
/** BYTE_ID[b] = vocabulary id of byte b's symbol. */
const BYTE_ID = new Int32Array(256);
{
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  for (let i = 0; i < 256; i++) {
    BYTE_ORDER.push(bs[i]!);
    BYTE_CHAR[bs[i]!] = String.fromCharCode(cs[i]!);
    BYTE_ID[bs[i]!] = i;
  }
}

/** CLIP's `bytes_to_unicode()` as a Map from byte to character (insertion order = vocabulary order). */
export function bytesToUnicode(): Map<number, string> {
  return new Map(BYTE_ORDER.map((b) => [b, BYTE_CHAR[b]!]));
}

// ---------------------------------------------------------------------------------------------
// Python's html.unescape

/** Named references: every HTML 4 name, the upper-case legacy names and `apos`, with HTML5 values. */
const NAMED_ENTITIES: ReadonlyMap<string, string> = (() => {
  const table =
    'QUOT:22 quot:22 AMP:26 amp:26 apos:27 LT:3c lt:3c GT:3e gt:3e nbsp:a0 iexcl:a1 cent:a2 pound:a3 ' +
    'curren:a4 yen:a5 brvbar:a6 sect:a7 uml:a8 COPY:a9 copy:a9 ordf:aa laquo:ab not:ac shy:ad REG:ae ' +
    'reg:ae macr:af deg:b0 plusmn:b1 sup2:b2 sup3:b3 acute:b4 micro:b5 para:b6 middot:b7 cedil:b8 sup1:b9 ' +
    'ordm:ba raquo:bb frac14:bc frac12:bd frac34:be iquest:bf Agrave:c0 Aacute:c1 Acirc:c2 Atilde:c3 ' +
    'Auml:c4 Aring:c5 AElig:c6 Ccedil:c7 Egrave:c8 Eacute:c9 Ecirc:ca Euml:cb Igrave:cc Iacute:cd Icirc:ce ' +
    'Iuml:cf ETH:d0 Ntilde:d1 Ograve:d2 Oacute:d3 Ocirc:d4 Otilde:d5 Ouml:d6 times:d7 Oslash:d8 Ugrave:d9 ' +
    'Uacute:da Ucirc:db Uuml:dc Yacute:dd THORN:de szlig:df agrave:e0 aacute:e1 acirc:e2 atilde:e3 auml:e4 ' +
    'aring:e5 aelig:e6 ccedil:e7 egrave:e8 eacute:e9 ecirc:ea euml:eb igrave:ec iacute:ed icirc:ee iuml:ef ' +
    'eth:f0 ntilde:f1 ograve:f2 oacute:f3 ocirc:f4 otilde:f5 ouml:f6 divide:f7 oslash:f8 ugrave:f9 ' +
    'uacute:fa ucirc:fb uuml:fc yacute:fd thorn:fe yuml:ff OElig:152 oelig:153 Scaron:160 scaron:161 ' +
    'Yuml:178 fnof:192 circ:2c6 tilde:2dc Alpha:391 Beta:392 Gamma:393 Delta:394 Epsilon:395 Zeta:396 ' +
    'Eta:397 Theta:398 Iota:399 Kappa:39a Lambda:39b Mu:39c Nu:39d Xi:39e Omicron:39f Pi:3a0 Rho:3a1 ' +
    'Sigma:3a3 Tau:3a4 Upsilon:3a5 Phi:3a6 Chi:3a7 Psi:3a8 Omega:3a9 alpha:3b1 beta:3b2 gamma:3b3 ' +
    'delta:3b4 epsilon:3b5 zeta:3b6 eta:3b7 theta:3b8 iota:3b9 kappa:3ba lambda:3bb mu:3bc nu:3bd xi:3be ' +
    'omicron:3bf pi:3c0 rho:3c1 sigmaf:3c2 sigma:3c3 tau:3c4 upsilon:3c5 phi:3c6 chi:3c7 psi:3c8 ' +
    'omega:3c9 thetasym:3d1 upsih:3d2 piv:3d6 ensp:2002 emsp:2003 thinsp:2009 zwnj:200c zwj:200d ' +
    'lrm:200e rlm:200f ndash:2013 mdash:2014 lsquo:2018 rsquo:2019 sbquo:201a ldquo:201c rdquo:201d ' +
    'bdquo:201e dagger:2020 Dagger:2021 bull:2022 hellip:2026 permil:2030 prime:2032 Prime:2033 ' +
    'lsaquo:2039 rsaquo:203a oline:203e frasl:2044 euro:20ac image:2111 weierp:2118 real:211c trade:2122 ' +
    'alefsym:2135 larr:2190 uarr:2191 rarr:2192 darr:2193 harr:2194 crarr:21b5 lArr:21d0 uArr:21d1 ' +
    'rArr:21d2 dArr:21d3 hArr:21d4 forall:2200 part:2202 exist:2203 empty:2205 nabla:2207 isin:2208 ' +
    'notin:2209 ni:220b prod:220f sum:2211 minus:2212 lowast:2217 radic:221a prop:221d infin:221e ' +
    'ang:2220 and:2227 or:2228 cap:2229 cup:222a int:222b there4:2234 sim:223c cong:2245 asymp:2248 ' +
    'ne:2260 equiv:2261 le:2264 ge:2265 sub:2282 sup:2283 nsub:2284 sube:2286 supe:2287 oplus:2295 ' +
    'otimes:2297 perp:22a5 sdot:22c5 lceil:2308 rceil:2309 lfloor:230a rfloor:230b loz:25ca spades:2660 ' +
    'clubs:2663 hearts:2665 diams:2666 lang:27e8 rang:27e9';
  const m = new Map<string, string>();
  for (const item of table.split(' ')) {
    const [name, hex] = item.split(':') as [string, string];
    m.set(name, String.fromCodePoint(parseInt(hex, 16)));
  }
  return m;
})();

/** Names that HTML5 (and Python) also decode without the trailing `;`. */
const LEGACY_ENTITIES: ReadonlySet<string> = new Set(
  (
    'AElig AMP Aacute Acirc Agrave Aring Atilde Auml COPY Ccedil ETH Eacute Ecirc Egrave Euml GT Iacute ' +
    'Icirc Igrave Iuml LT Ntilde Oacute Ocirc Ograve Oslash Otilde Ouml QUOT REG THORN Uacute Ucirc ' +
    'Ugrave Uuml Yacute aacute acirc acute aelig agrave amp aring atilde auml brvbar ccedil cedil cent ' +
    'copy curren deg divide eacute ecirc egrave eth euml frac12 frac14 frac34 gt iacute icirc iexcl ' +
    'igrave iquest iuml laquo lt macr micro middot nbsp not ntilde oacute ocirc ograve ordf ordm oslash ' +
    'otilde ouml para plusmn pound quot raquo reg sect shy sup1 sup2 sup3 szlig thorn times uacute ucirc ' +
    'ugrave uml uuml yacute yen yuml'
  ).split(' '),
);

/** Python's `html._invalid_charrefs`: numeric references that HTML5 remaps. */
const INVALID_CHARREFS: ReadonlyMap<number, string> = (() => {
  const m = new Map<number, string>([
    [0x00, '\ufffd'],
    [0x0d, '\r'],
  ]);
  // 0x80..0x9f -> windows-1252, except the five bytes it leaves undefined, which map to themselves.
  const cp1252 = [
    0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152,
    0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122,
    0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
  ];
  cp1252.forEach((cp, i) => m.set(0x80 + i, String.fromCodePoint(cp)));
  return m;
})();

/** Python's `html._invalid_codepoints`: numeric references that decode to nothing. */
function isInvalidCodepoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

function decodeNumericRef(num: number): string {
  const remapped = INVALID_CHARREFS.get(num);
  if (remapped !== undefined) return remapped;
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
  if (isInvalidCodepoint(num)) return '';
  return String.fromCodePoint(num);
}

const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function replaceCharref(_match: string, s: string): string {
  if (s[0] === '#') {
    const hex = s[1] === 'x' || s[1] === 'X';
    const digits = s.slice(hex ? 2 : 1).replace(/;$/, '');
    return decodeNumericRef(parseInt(digits, hex ? 16 : 10));
  }
  if (s.endsWith(';')) {
    const v = NAMED_ENTITIES.get(s.slice(0, -1));
    if (v !== undefined) return v;
  } else if (LEGACY_ENTITIES.has(s)) {
    return NAMED_ENTITIES.get(s)!;
  }
  // The longest legacy name that prefixes s (names are ASCII, so code-unit slicing is exact).
  for (let x = s.length - 1; x > 1; x--) {
    const head = s.slice(0, x);
    if (LEGACY_ENTITIES.has(head)) return NAMED_ENTITIES.get(head)! + s.slice(x);
  }
  return '&' + s;
}

/** Python's `html.unescape` (named references limited to NAMED_ENTITIES; see the module comment). */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF_RE, replaceCharref);
}

// ---------------------------------------------------------------------------------------------
// ftfy.fix_text, approximated

const ANSI_RE = /\x1b\[((?:\p{Nd}|;)*)([a-zA-Z])/gu; // Python's \d is Unicode Nd
const FTFY_ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;
const LIGATURES: Readonly<Record<string, string>> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž',
  'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj', 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl',
  'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;
const WIDTH_MAP: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>([['\u3000', ' ']]);
  for (let i = 0xff01; i < 0xfff0; i++) {
    const c = String.fromCharCode(i);
    const alt = c.normalize('NFKC');
    if (alt !== c) m.set(c, alt);
  }
  return m;
})();
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;
const SINGLE_QUOTE_RE = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTE_RE = /[\u201c-\u201f]/g;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
const PLAIN_ASCII_RE = /^[\x20-\x25\x27-\x7e]*$/; // printable ASCII without '&': every fix is a no-op

function ftfyEntity(t: string): string {
  if (t.startsWith('&#')) {
    const u = htmlUnescape(t);
    return u.includes(';') ? t : u;
  }
  return NAMED_ENTITIES.get(t.slice(1, -1)) ?? t;
}

/** The approximation of `ftfy.fix_text` described in the module comment. */
export function fixTextApprox(text: string): string {
  if (PLAIN_ASCII_RE.test(text)) return text;
  const unescape = !text.includes('<');
  for (;;) {
    const orig = text;
    text = text.replace(ANSI_RE, '');
    if (unescape) text = text.replace(FTFY_ENTITY_RE, ftfyEntity);
    text = text.replace(LIGATURE_RE, (c) => LIGATURES[c] ?? c);
    text = text.replace(WIDTH_RE, (c) => WIDTH_MAP.get(c) ?? c);
    text = text.replace(SINGLE_QUOTE_RE, "'").replace(DOUBLE_QUOTE_RE, '"');
    text = text.replace(LONE_SURROGATE_RE, '\ufffd');
    text = text.replace(CONTROL_RE, '');
    text = text.normalize('NFC');
    if (text === orig) return text;
  }
}

// ---------------------------------------------------------------------------------------------
// Cleaning and the pre-tokenising pattern

/** Python `regex` module's `\s` (Unicode White_Space). */
const PY_WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** Python `str.isspace()` = PY_WS plus U+001C..U+001F. */
const PY_ISSPACE = PY_WS + '\\x1c-\\x1f';
const WS_RUN_RE = new RegExp(`[${PY_WS}]+`, 'g');
const STRIP_RE = new RegExp(`^[${PY_ISSPACE}]+|[${PY_ISSPACE}]+$`, 'g');
/** Same pattern as CLIP's; see the module comment for why the flags are `gu` and `s` is `[sſ]`. */
const TOKEN_RE = new RegExp(
  `<\\|[sſ]tartoftext\\|>|<\\|endoftext\\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${PY_WS}\\p{L}\\p{N}\\u0345]+`,
  'gu',
);

/** CLIP's `whitespace_clean(basic_clean(text)).lower()`, with ftfy approximated. */
export function cleanText(text: string): string {
  text = fixTextApprox(text);
  text = htmlUnescape(htmlUnescape(text));
  text = text.replace(STRIP_RE, '');
  text = text.replace(WS_RUN_RE, ' ').replace(STRIP_RE, '');
  return text.toLowerCase();
}

/** The pieces CLIP's pattern splits cleaned text into. */
export function pretokenize(cleaned: string): string[] {
  return cleaned.match(TOKEN_RE) ?? [];
}

// ---------------------------------------------------------------------------------------------
// The tokenizer

export interface TokenizeOptions {
  /**
   * When the text does not fit (more than contextLength - 2 tokens), true (the default) keeps the
   * first contextLength tokens and overwrites the last with EOT, as `clip.tokenize(truncate=True)`;
   * false throws, as `clip.tokenize`'s default.
   */
  truncate?: boolean;
}

const CACHE_LIMIT = 1 << 17;
const utf8 = new TextEncoder();

export class ClipTokenizer {
  private static readonly loaded = new Map<string, ClipTokenizer>();

  readonly vocabSize = CLIP_VOCAB_SIZE;
  readonly sot = CLIP_SOT;
  readonly eot = CLIP_EOT;
  readonly contextLength = CLIP_CONTEXT_LENGTH;

  /** id -> token string (the byte symbols, `</w>` included), as CLIP's `decoder`. */
  private readonly vocab: string[];
  private readonly encoder: Map<string, number>;
  /** (leftId * vocabSize + rightId) -> merge rank; the merged symbol's id is 512 + rank. */
  private readonly ranks: Map<number, number>;
  private readonly mergeLeft: Int32Array;
  private readonly mergeRight: Int32Array;
  /** id -> the bytes its token string stands for (`</w>` as its four ASCII bytes). */
  private idBytesCache: Uint8Array[] | undefined;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  /** The shipped vocabulary (or the gzipped file at `path`), read once and cached. */
  static load(path: string = defaultVocabPath()): ClipTokenizer {
    const key = resolve(path);
    let tok = ClipTokenizer.loaded.get(key);
    if (!tok) {
      if (!existsSync(key)) throw new Error(`tokenizer: vocabulary not found at ${key}`);
      tok = new ClipTokenizer(gunzipSync(readFileSync(key)).toString('utf8'));
      ClipTokenizer.loaded.set(key, tok);
    }
    return tok;
  }

  /** Builds a tokenizer from the text of `bpe_simple_vocab_16e6.txt` (un-gzipped). */
  constructor(bpeText: string) {
    // Only the first N_MERGES lines after the version line are used (the file has ~262K).
    const lines: string[] = [];
    let pos = bpeText.indexOf('\n') + 1;
    while (pos > 0 && lines.length < N_MERGES && pos < bpeText.length) {
      const nl = bpeText.indexOf('\n', pos);
      lines.push(bpeText.slice(pos, nl < 0 ? bpeText.length : nl));
      pos = nl + 1;
    }
    if (lines.length !== N_MERGES) throw new Error(`tokenizer: expected ${N_MERGES} merges, got ${lines.length}`);
    const vocab: string[] = [];
    for (const b of BYTE_ORDER) vocab.push(BYTE_CHAR[b]!);
    for (const b of BYTE_ORDER) vocab.push(BYTE_CHAR[b]! + '</w>');
    const encoder = new Map<string, number>();
    vocab.forEach((t, i) => encoder.set(t, i));
    this.ranks = new Map();
    this.mergeLeft = new Int32Array(N_MERGES);
    this.mergeRight = new Int32Array(N_MERGES);
    for (let r = 0; r < N_MERGES; r++) {
      const line = lines[r]!.trim();
      const sp = line.indexOf(' ');
      const parts = sp > 0 && line.indexOf(' ', sp + 1) < 0 ? [line.slice(0, sp), line.slice(sp + 1)] : line.split(/\s+/);
      if (parts.length !== 2) throw new Error(`tokenizer: bad merge line ${r + 2}: ${JSON.stringify(lines[r])}`);
      const [a, b] = parts as [string, string];
      const ia = encoder.get(a);
      const ib = encoder.get(b);
      if (ia === undefined || ib === undefined) throw new Error(`tokenizer: merge ${r} uses unknown symbols`);
      const merged = a + b;
      if (encoder.has(merged)) throw new Error(`tokenizer: merge ${r} repeats the token ${merged}`);
      this.ranks.set(ia * CLIP_VOCAB_SIZE + ib, r);
      this.mergeLeft[r] = ia;
      this.mergeRight[r] = ib;
      encoder.set(merged, vocab.length);
      vocab.push(merged);
    }
    for (const special of ['<|startoftext|>', '<|endoftext|>']) {
      encoder.set(special, vocab.length);
      vocab.push(special);
    }
    if (vocab.length !== CLIP_VOCAB_SIZE) throw new Error(`tokenizer: vocabulary has ${vocab.length} entries`);
    this.vocab = vocab;
    this.encoder = encoder;
  }

  /** id -> the bytes its token string stands for, built on first use (only decoding needs it). */
  private get idBytes(): Uint8Array[] {
    if (this.idBytesCache) return this.idBytesCache;
    const byteOfChar = new Map<string, number>();
    for (let b = 0; b < 256; b++) byteOfChar.set(BYTE_CHAR[b]!, b);
    return (this.idBytesCache = this.vocab.map((t) => {
      const out: number[] = [];
      for (const c of t) {
        const b = byteOfChar.get(c);
        if (b === undefined) throw new Error(`tokenizer: token ${JSON.stringify(t)} has a non-byte character`);
        out.push(b);
      }
      return Uint8Array.from(out);
    }));
  }

  /** Ids of the cleaned, BPE-encoded text, without SOT/EOT (CLIP's `SimpleTokenizer.encode`). */
  encode(text: string): number[] {
    const out: number[] = [];
    this.encodeInto(text, out);
    return out;
  }

  /**
   * `[SOT, ...encode(text), EOT]`, zero-padded to contextLength (CLIP's `clip.tokenize` for one text).
   * Truncation policy: see TokenizeOptions.truncate (default: keep the first contextLength ids, the
   * last of them replaced by EOT, so every row ends its text with EOT).
   */
  tokenize(text: string, contextLength: number = CLIP_CONTEXT_LENGTH, options: TokenizeOptions = {}): Int32Array {
    const row = new Int32Array(contextLength);
    this.tokenizeInto(text, row, 0, contextLength, options);
    return row;
  }

  /** tokenize() for many texts: a row-major [texts.length, contextLength] Int32Array. */
  tokenizeBatch(
    texts: readonly string[],
    contextLength: number = CLIP_CONTEXT_LENGTH,
    options: TokenizeOptions = {},
  ): Int32Array {
    const out = new Int32Array(texts.length * contextLength);
    texts.forEach((t, i) => this.tokenizeInto(t, out, i * contextLength, contextLength, options));
    return out;
  }

  /**
   * CLIP's `SimpleTokenizer.decode`: token strings joined, bytes decoded as UTF-8 (invalid sequences
   * -> U+FFFD), every `</w>` -> one space. Specials and padding are decoded too (id 0 is `!`); pass
   * `{ skipSpecial: true }` to drop SOT and stop at the first EOT.
   */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const parts: Uint8Array[] = [];
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (options.skipSpecial) {
        if (id === this.eot) break;
        if (id === this.sot) continue;
      }
      const bytes = Number.isInteger(id) ? this.idBytes[id] : undefined;
      if (bytes === undefined) throw new RangeError(`tokenizer: id ${id} is not in the vocabulary`);
      parts.push(bytes);
      n += bytes.length;
    }
    const all = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return this.decoder.decode(all).replaceAll('</w>', ' ');
  }

  /** The token string of an id (byte symbols as in CLIP's vocabulary). */
  idToToken(id: number): string {
    const t = this.vocab[id];
    if (t === undefined) throw new RangeError(`tokenizer: id ${id} is not in the vocabulary`);
    return t;
  }

  /** The id of a vocabulary token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  private tokenizeInto(text: string, out: Int32Array, offset: number, contextLength: number, options: TokenizeOptions): void {
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new RangeError(`tokenizer: contextLength must be an integer >= 2, got ${contextLength}`);
    }
    const ids = [this.sot];
    this.encodeInto(text, ids);
    ids.push(this.eot);
    if (ids.length > contextLength) {
      if (options.truncate === false) {
        throw new RangeError(`tokenizer: input is too long for context length ${contextLength}: ${JSON.stringify(text)}`);
      }
      ids.length = contextLength;
      ids[contextLength - 1] = this.eot;
    }
    for (let i = 0; i < ids.length; i++) out[offset + i] = ids[i]!;
  }

  private encodeInto(text: string, out: number[]): void {
    const pieces = pretokenize(cleanText(text));
    for (const piece of pieces) {
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        if (piece === '<|startoftext|>') ids = [this.sot];
        else if (piece === '<|endoftext|>') ids = [this.eot];
        else ids = this.bpe(piece);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** CLIP's `bpe()` on ids: the lowest-ranked adjacent pair is merged everywhere, until none is left. */
  private bpe(piece: string): number[] {
    const bytes = utf8.encode(piece);
    const n = bytes.length;
    let word: number[] = new Array<number>(n);
    for (let i = 0; i < n; i++) word[i] = BYTE_ID[bytes[i]!]!;
    word[n - 1] = word[n - 1]! + 256; // the last symbol carries </w>
    const V = CLIP_VOCAB_SIZE;
    while (word.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(word[i]! * V + word[i + 1]!);
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const a = this.mergeLeft[best]!;
      const b = this.mergeRight[best]!;
      const merged = 512 + best;
      const next: number[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === a && i + 1 < word.length && word[i + 1] === b) {
          next.push(merged);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    return word;
  }
}
