// What the browser checks itself, with the same algorithms as vellum-spec:
// RFC 9162 leaf hashes and inclusion proofs, C2SP signed notes and
// checkpoints, Ed25519 log signatures and cosignature/v1 witness
// signatures. WebCrypto where the page has it (a secure context: https or
// localhost), the vendored @noble code otherwise.
import * as ed from './vendor/noble-ed25519/index.js';
import { sha256 as nobleSha256, sha512 as nobleSha512 } from './vendor/noble-hashes/sha2.js';

const webcrypto = globalThis.crypto && globalThis.crypto.subtle;
let forceNoble = false;

/** Uses the vendored code even where WebCrypto exists (for its tests). */
export function useNoble(on) {
  forceNoble = Boolean(on);
}

function subtleOrNull() {
  return forceNoble ? null : webcrypto;
}
ed.etc.sha512Sync = (...m) => nobleSha512(ed.etc.concatBytes(...m));

const enc = new TextEncoder();

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(u8) {
  let s = '';
  for (const b of u8) s += String.fromCharCode(b);
  return btoa(s);
}

export function hex(u8) {
  return Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function fromHex(s) {
  if (s.length % 2) throw new Error('odd hex');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Which implementation the checks use. */
export function engine() {
  return subtleOrNull() ? 'WebCrypto' : '@noble (no WebCrypto outside a secure context)';
}

export async function sha256(bytes) {
  const subtle = subtleOrNull();
  if (subtle) return new Uint8Array(await subtle.digest('SHA-256', bytes));
  return nobleSha256(bytes);
}

/** RFC 9162 §2.1.1: SHA-256(0x00 || leaf). */
export async function leafHash(leaf) {
  return sha256(concat(new Uint8Array([0]), leaf));
}

async function nodeHash(l, r) {
  return sha256(concat(new Uint8Array([1]), l, r));
}

/**
 * RFC 9162 §2.1.3.2: does `proof` (sibling first) lead from the leaf hash
 * at `index` to `root` in a tree of `size`? Indexes are BigInt.
 */
export async function verifyInclusion(index, size, leaf, proof, root) {
  index = BigInt(index);
  size = BigInt(size);
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(r, root);
}

/** RFC 9162 §2.1.1 root of leaves (for the vectors). */
export async function rootOf(leaves) {
  if (leaves.length === 0) return sha256(new Uint8Array());
  if (leaves.length === 1) return leafHash(leaves[0]);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(await rootOf(leaves.slice(0, k)), await rootOf(leaves.slice(k)));
}

const ALG_ED25519 = 0x01;
const ALG_COSIGNATURE_V1 = 0x04;

/** A C2SP verifier key `name+hexid+base64(alg || key)`. */
export async function parseVerifierKey(vkey) {
  // The key's base64 may itself hold '+': split at the first two only.
  const t = vkey.trim();
  const a = t.indexOf('+');
  const b = a < 0 ? -1 : t.indexOf('+', a + 1);
  if (a <= 0 || b < 0) throw new Error('a verifier key is name+id+key');
  const [name, idHex, keyB64] = [t.slice(0, a), t.slice(a + 1, b), t.slice(b + 1)];
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error('key ID is not 8 hex digits');
  const raw = b64decode(keyB64);
  if (raw.length !== 33 || (raw[0] !== ALG_ED25519 && raw[0] !== ALG_COSIGNATURE_V1)) {
    throw new Error('not an Ed25519 or cosignature/v1 key');
  }
  const id = (await sha256(concat(enc.encode(name + '\n'), raw))).slice(0, 4);
  if (hex(id) !== idHex) throw new Error('key ID does not match the key');
  return { name, id, idHex, alg: raw[0], key: raw.slice(1), text: vkey.trim() };
}

/** Splits a signed note into its text and signature lines. */
export function parseNote(noteText) {
  const at = noteText.lastIndexOf('\n\n');
  if (at < 0 || !noteText.endsWith('\n')) throw new Error('not a signed note');
  const text = noteText.slice(0, at + 1);
  const sigs = noteText
    .slice(at + 2, -1)
    .split('\n')
    .map((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error('malformed signature line');
      const raw = b64decode(m[2]);
      if (raw.length < 5) throw new Error('short signature');
      return { name: m[1], id: raw.slice(0, 4), sig: raw.slice(4) };
    });
  return { text, sigs };
}

/** A checkpoint's origin, size (BigInt) and root hash. */
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error('not a checkpoint');
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new Error('checkpoint root is not 32 bytes');
  return { origin: lines[0], size: BigInt(lines[1]), root };
}

export async function ed25519Verify(pub, sig, msg) {
  if (sig.length !== 64) return false;
  const subtle = subtleOrNull();
  if (subtle) {
    try {
      const k = await subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
      return await subtle.verify({ name: 'Ed25519' }, k, sig, msg);
    } catch (e) {
      // A browser without WebCrypto Ed25519: fall through to @noble.
    }
  }
  try {
    return ed.verify(sig, msg, pub);
  } catch (e) {
    return false;
  }
}

/**
 * Checks the signature(s) of `key` on a note: `ok` when a line with its
 * name and key ID verifies; for a cosignature/v1 key also its timestamp.
 */
export async function verifyNoteSignature(note, key) {
  const lines = note.sigs.filter((s) => s.name === key.name && equal(s.id, key.id));
  if (lines.length === 0) return { ok: false, why: `no signature by ${key.name}+${key.idHex}` };
  for (const s of lines) {
    if (key.alg === ALG_ED25519) {
      if (await ed25519Verify(key.key, s.sig, enc.encode(note.text))) return { ok: true };
    } else {
      if (s.sig.length !== 72) continue;
      const t = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
      const msg = enc.encode(`cosignature/v1\ntime ${t}\n` + note.text);
      if (await ed25519Verify(key.key, s.sig.slice(8), msg)) return { ok: true, time: t };
    }
  }
  return { ok: false, why: `the signature by ${key.name}+${key.idHex} does not verify` };
}

/** The entries of a C2SP entry bundle (16-bit big-endian length prefixes). */
export function parseBundle(bytes) {
  const out = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 2 > bytes.length) throw new Error('truncated entry bundle');
    const n = (bytes[at] << 8) | bytes[at + 1];
    at += 2;
    if (at + n > bytes.length) throw new Error('truncated entry bundle');
    out.push(bytes.slice(at, at + n));
    at += n;
  }
  return out;
}

/** The C2SP tlog-tiles path of entry bundle `n` in a tree of `size`. */
export function bundlePath(n, size) {
  n = BigInt(n);
  size = BigInt(size);
  let p = '';
  let x = n;
  const parts = [];
  do {
    parts.unshift(x % 1000n);
    x /= 1000n;
  } while (x > 0n);
  p = parts
    .map((v, i) => (i < parts.length - 1 ? 'x' : '') + v.toString().padStart(3, '0'))
    .join('/');
  const width = size - n * 256n;
  return width >= 256n ? `tile/entries/${p}` : `tile/entries/${p}.p/${width}`;
}
