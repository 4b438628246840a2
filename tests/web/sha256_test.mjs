#!/usr/bin/env node
// The browser client's incremental SHA-256 (web/sha256.js) against known answers
// and against Node's crypto on random inputs of many sizes, fed in random pieces.
// Exit 0 on pass, 1 on the first mismatch.

import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { Sha256, sha256Hex } = await import(pathToFileURL(path.resolve(here, '../../web/sha256.js')).href);

let checked = 0;
function fail(msg) {
  process.stderr.write(`sha256_test: FAIL ${msg}\n`);
  process.exit(1);
}
function expectEq(got, want, what) {
  if (got !== want) fail(`${what}: got ${got}, want ${want}`);
  checked++;
}

// FIPS 180-2 appendix B / NIST CAVP short messages.
const enc = (s) => new TextEncoder().encode(s);
expectEq(sha256Hex(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'empty');
expectEq(sha256Hex(enc('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', '"abc"');
expectEq(sha256Hex(enc('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
  '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1', '448-bit message');
{
  const h = new Sha256();
  const a = new Uint8Array(1000).fill(0x61);
  for (let i = 0; i < 1000; i++) h.update(a);
  expectEq(h.hexDigest(), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0', 'one million "a"');
}

// ArrayBuffer and other views are accepted as input.
{
  const b = crypto.randomBytes(100);
  const want = crypto.createHash('sha256').update(b).digest('hex');
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
  expectEq(new Sha256().update(ab).hexDigest(), want, 'ArrayBuffer input');
  expectEq(new Sha256().update(new DataView(ab)).hexDigest(), want, 'DataView input');
}

// Random inputs: every size around the block and padding boundaries, then larger.
const sizes = [];
for (let n = 0; n <= 300; n++) sizes.push(n);
for (const n of [511, 512, 513, 1023, 1024, 4095, 4096, 65535, 65536, 65537, 1 << 20, (3 << 20) + 7]) sizes.push(n);
for (let i = 0; i < 20; i++) sizes.push(crypto.randomInt(1, 200000));

for (const n of sizes) {
  const data = crypto.randomBytes(n);
  const want = crypto.createHash('sha256').update(data).digest('hex');
  expectEq(sha256Hex(data), want, `one-shot, ${n} bytes`);
  // the same bytes in random pieces (including empty ones)
  const h = new Sha256();
  let off = 0;
  while (off < n) {
    const k = Math.min(n - off, crypto.randomInt(0, Math.min(n, 70000) + 2));
    h.update(data.subarray(off, off + k));
    off += k;
  }
  expectEq(h.hexDigest(), want, `incremental, ${n} bytes`);
}

// digest() ends the hash.
{
  const h = new Sha256();
  h.digest();
  let threw = false;
  try { h.update(new Uint8Array(1)); } catch { threw = true; }
  if (!threw) fail('update() after digest() must throw');
  checked++;
}

// Throughput, for the record (a 50 MB transfer hashes on the main thread).
const big = crypto.randomBytes(16 << 20);
const t0 = performance.now();
const h = new Sha256();
for (let off = 0; off < big.length; off += 65536) h.update(big.subarray(off, off + 65536));
expectEq(h.hexDigest(), crypto.createHash('sha256').update(big).digest('hex'), '16 MiB in 64 KiB chunks');
const mbps = (16 / ((performance.now() - t0) / 1000)).toFixed(0);
process.stdout.write(`sha256_test: pass (${checked} checks, ${mbps} MiB/s in 64 KiB chunks)\n`);
