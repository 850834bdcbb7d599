// Minimal GGUF metadata reader: the token list (tokenizer.ggml.tokens) of a GGUF file, used by the
// browser tests as an oracle independent of the engine (e.g. the id of " London").
import { openSync, readSync, closeSync } from 'node:fs';

const SIZES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export function readGgufTokens(path) {
  const fd = openSync(path, 'r');
  let buf = Buffer.alloc(0), base = 0, pos = 0;
  const need = (n) => {  // make buf cover [pos, pos+n)
    if (pos + n <= base + buf.length) return;
    const start = pos, len = Math.max(n, 1 << 22), b = Buffer.alloc(len);
    const got = readSync(fd, b, 0, len, start);
    if (got < n) throw new Error(`GGUF: unexpected end of file at ${start}`);
    buf = b.subarray(0, got); base = start;
  };
  const u32 = () => { need(4); const v = buf.readUInt32LE(pos - base); pos += 4; return v; };
  const u64 = () => { need(8); const v = Number(buf.readBigUInt64LE(pos - base)); pos += 8; return v; };
  const str = () => { const n = u64(); need(n); const s = buf.toString('utf8', pos - base, pos - base + n); pos += n; return s; };
  const skip = (type) => {
    if (type === 8) { str(); return; }
    if (type === 9) { const t = u32(), n = u64(); for (let i = 0; i < n; i++) skip(t); return; }
    const s = SIZES[type]; if (!s) throw new Error(`GGUF: bad value type ${type}`); need(s); pos += s;
  };
  try {
    need(24);
    if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file');
    pos = 8; u64(); const kvs = u64();
    for (let i = 0; i < kvs; i++) {
      const key = str(), type = u32();
      if (key === 'tokenizer.ggml.tokens' && type === 9) {
        const t = u32(), n = u64(); if (t !== 8) throw new Error('GGUF: tokens are not strings');
        const tokens = new Array(n); for (let j = 0; j < n; j++) tokens[j] = str();
        return tokens;
      }
      skip(type);
    }
    throw new Error('GGUF: no tokenizer.ggml.tokens');
  } finally { closeSync(fd); }
}

// GPT-2 byte-level BPE spells a leading space as "Ġ".
export function tokenId(tokens, text) {
  const id = tokens.indexOf(text.replace(/ /g, '\u0120'));
  return id < 0 ? null : id;
}
