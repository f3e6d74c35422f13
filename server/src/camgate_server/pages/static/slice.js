"use strict";
// An owner's slice of the audit log, checked in the page (docs/audit.md, "An owner's slice"):
// each checkpoint's Ed25519 signature (WebCrypto), the owner's head as a leaf of the
// checkpoint's owners' Merkle root (RFC 9162 audit path), every record's SHA-256 and the
// owner's sub-chain linking one record to the next up to the signed head. The same checks as
// camgate.audit.verify_owner_slice, so the owner need not trust the server's own "verified".
//
// Hashes are over canonical JSON (sorted keys, no whitespace, UTF-8). JSON.parse would turn
// the server's 60.0 into 60 and change the bytes hashed, so the slice is parsed here keeping
// each number's text as written (Python's float repr, which is what was hashed).

const CHECKPOINT_PREFIX = "camgate-audit-checkpoint-v1\n";
const GENESIS = "0".repeat(64);

class Num {
  constructor(text) {
    this.text = text;
  }
}

// JSON text → values, numbers as Num (their text kept). Throws SyntaxError on bad JSON.
function parseExact(text) {
  let i = 0;
  const fail = () => {
    throw new SyntaxError(`not JSON at character ${i}`);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i += 1;
  };
  // The items of an object or a list, from its opening character to `close`, each read by
  // each(), separated by commas.
  const items = (close, each) => {
    i += 1;
    space();
    if (text[i] === close) {
      i += 1;
      return;
    }
    for (;;) {
      each();
      space();
      if (text[i] === ",") i += 1;
      else if (text[i] === close) {
        i += 1;
        return;
      } else fail();
    }
  };
  const value = () => {
    space();
    const c = text[i];
    if (c === "{") {
      const object = {};
      items("}", () => {
        space();
        if (text[i] !== '"') fail();
        const key = string();
        space();
        if (text[i] !== ":") fail();
        i += 1;
        object[key] = value();
      });
      return object;
    }
    if (c === "[") {
      const list = [];
      items("]", () => list.push(value()));
      return list;
    }
    if (c === '"') return string();
    for (const [word, meaning] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return meaning;
      }
    }
    const number = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!number) fail();
    i += number[0].length;
    return new Num(number[0]);
  };
  const string = () => {
    const match = /^"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/.exec(text.slice(i));
    if (!match) fail();
    i += match[0].length;
    return JSON.parse(match[0]);
  };
  const result = value();
  space();
  if (i !== text.length) fail();
  return result;
}

// The canonical JSON text of a value from parseExact (Python's json.dumps with sort_keys,
// separators (",", ":") and ensure_ascii=False: strings escape alike in both).
function canonical(v) {
  if (v instanceof Num) return v.text;
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
}

function hexBytes(hex) {
  if (typeof hex !== "string" || !/^([0-9a-f]{2})*$/.test(hex)) throw new Error("not hex");
  return Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
}

function hexOf(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function joined(...parts) {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const utf8 = (text) => new TextEncoder().encode(text);
const int = (v) => Number(v instanceof Num ? v.text : v);
const same = (a, b) => a.length === b.length && a.every((x, k) => x === b[k]);

async function leafHash(leaf) {
  const text = canonical({ head: leaf.head, owner: leaf.owner, seq: leaf.seq });
  return sha256(joined(Uint8Array.of(0), utf8(text)));
}

// RFC 9162 2.1.3.2: does `path` prove `leaf` is leaf `index` of the `size`-leaf tree `root`?
async function merkleOk(leaf, index, size, path, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn & 1 || fn === sn) {
      r = await sha256(joined(Uint8Array.of(1), p, r));
      while (!(fn & 1) && fn !== 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = await sha256(joined(Uint8Array.of(1), r, p));
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 && same(r, root);
}

async function signatureOk(checkpoint) {
  const key = await crypto.subtle.importKey(
    "raw", hexBytes(checkpoint.payload.key), { name: "Ed25519" }, false, ["verify"]);
  const message = utf8(CHECKPOINT_PREFIX + canonical(checkpoint.payload));
  return crypto.subtle.verify({ name: "Ed25519" }, key, hexBytes(checkpoint.signature), message);
}

// Check a slice (its JSON text as the server sent it, or as saved): {ok, problem, records,
// since, until, key}. `problem` names the first check that failed, in words.
async function checkSlice(text) {
  let piece;
  try {
    const whole = parseExact(text);
    piece = whole.slice || whole; // the server's answer, or the slice alone
  } catch (error) {
    return { ok: false, problem: `this is not a slice of the audit log (${error.message})` };
  }
  const result = (problem) => ({
    ok: !problem, problem, records: (piece.records || []).length,
    since: piece.start ? int(piece.start.payload.seq) : 0,
    until: piece.end ? int(piece.end.payload.seq) : 0,
    key: piece.end && piece.end.payload ? piece.end.payload.key : "",
  });
  try {
    let prev = GENESIS;
    let after = 0;
    const proofs = [
      ["first", piece.start, piece.start_leaf, piece.start_index, piece.start_path],
      ["second", piece.end, piece.end_leaf, piece.end_index, piece.end_path],
    ];
    for (const [name, cp, leaf, index, path] of proofs) {
      if (!cp) continue;
      if (cp.payload.key !== piece.end.payload.key) return result(`the ${name} checkpoint is signed by another key`);
      if (!(await signatureOk(cp))) return result(`the ${name} checkpoint's signature does not verify`);
      if (!leaf || leaf.owner !== piece.owner) return result(`the ${name} checkpoint's proof is not about ${piece.owner}`);
      const ok = await merkleOk(await leafHash(leaf), int(index), int(cp.payload.owners),
        path.map(hexBytes), hexBytes(cp.payload.owners_root));
      if (!ok) return result(`the owner's head is not in the ${name} checkpoint's owners root`);
      if (name === "first") [prev, after] = [leaf.head, int(cp.payload.seq)];
    }
    const until = int(piece.end.payload.seq);
    for (const r of piece.records) {
      const seq = int(r.seq);
      if (!(after < seq && seq <= until)) return result(`record ${seq} is outside records ${after + 1}..${until} or out of order`);
      const content = { at: r.at, body: r.body, kind: r.kind, prev: r.prev, seq: r.seq };
      if (r.owners && Object.keys(r.owners).length) content.owners = r.owners;
      if (hexOf(await sha256(utf8(canonical(content)))) !== r.hash) return result(`record ${seq}: its content does not match its hash`);
      if ((r.owners || {})[piece.owner] !== prev) return result(`record ${seq}: the owner's chain is broken (a record left out?)`);
      [prev, after] = [r.hash, seq];
    }
    if (piece.end_leaf.head !== prev) return result("the records do not end at the head signed in the checkpoint");
    return result("");
  } catch (error) {
    return result(`the slice is malformed (${error.message})`);
  }
}
