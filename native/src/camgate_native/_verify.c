/*
 * camgate_native._verify: one range of the audit log checked in C, straight from the SQLite file.
 *
 * The same checks as camgate.audit.fastverify.scan_range (read that docstring first): each
 * record's seq, its SHA-256 over the canonical text rebuilt from the stored texts, its link to the
 * record before it, and each owner's sub-chain link; the owner heads that moved are reported at
 * every checkpoint seq of the range for the Python merge. Like the Python fast path it only ever
 * answers "all good" (a tuple) or "let a slower verifier look" (None): it never names a bad
 * record. Anything unusual (an owner map with escapes, a column of an unexpected type) is a
 * doubt, not an error, so the result never depends on this file's parsing being complete.
 *
 * The scan runs with the GIL released, on its own read-only SQLite connection inside one read
 * transaction (a consistent snapshot that does not block appends), so several threads check
 * several ranges at once. SHA-256 is OpenSSL's (the library Python's hashlib uses).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define HEX 64 /* a SHA-256 in hex */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_add(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

#define BUF_LIT(b, s) buf_add((b), (s), sizeof(s) - 1)

/* A JSON string exactly as Python's json.encoder.encode_basestring writes it (ensure_ascii off):
 * quote, backslash and control characters escaped, everything else (UTF-8 included) as is. */
static int buf_json_str(Buf *b, const unsigned char *s, size_t n) {
    static const char hexd[] = "0123456789abcdef";
    if (buf_reserve(b, n * 6 + 2)) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        default:
            if (c < 0x20) {
                memcpy(o, "\\u00", 4);
                o += 4;
                *o++ = hexd[c >> 4];
                *o++ = hexd[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* True when s is UTF-8 that Python's strict decoder accepts (no overlong forms, no surrogates,
 * nothing above U+10FFFF). Python reads the columns as str, so text it could not decode must
 * not pass here either. */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0)) return 0;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90)) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ owner heads (a hash map) */

typedef struct {
    char *owner; /* NULL: empty slot */
    size_t len;
    char head[HEX];
    int64_t seq;
    int first_set;      /* the owner's first link in this range was recorded */
    char first[HEX];    /* ... and it is this */
    int64_t moved_mark; /* the snapshot epoch in which it last moved */
} Owner;

typedef struct {
    Owner *slots;
    size_t cap, used;
    /* the owners that moved in the current epoch, as slot indexes (stable until a resize,
     * which rebuilds it) */
    size_t *moved;
    size_t nmoved, moved_cap;
    int64_t epoch;
    uint64_t seed;
} Owners;

/* Owner ids are chosen by whoever writes records, so the map must not be floodable: FNV-1a
 * from a random per-scan seed, its 64 bits mixed down (splitmix64's finaliser) so the slot
 * depends on all of them, and a cap on the probe run. Past the cap the scan doubts, and the
 * range goes to Python's dict (SipHash). */
#define MAX_PROBES 64
#define CROWDED (SIZE_MAX - 1)

static uint64_t owner_hash(uint64_t seed, const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* The slot of s (its own, or the empty one it would take); CROWDED past MAX_PROBES. */
static size_t owners_find(const Owners *m, const char *s, size_t n) {
    size_t mask = m->cap - 1, i = (size_t)owner_hash(m->seed, s, n) & mask;
    for (int probes = 0; m->slots[i].owner; probes++) {
        if (m->slots[i].len == n && memcmp(m->slots[i].owner, s, n) == 0) return i;
        if (probes == MAX_PROBES) return CROWDED;
        i = (i + 1) & mask;
    }
    return i;
}

static int owners_init(Owners *m) {
    memset(m, 0, sizeof *m);
    if (getrandom(&m->seed, sizeof m->seed, 0) != (ssize_t)sizeof m->seed)
        m->seed = (uint64_t)(uintptr_t)m ^ (uint64_t)time(NULL); /* no entropy: still varies */
    m->cap = 1024;
    m->slots = calloc(m->cap, sizeof(Owner));
    return m->slots ? 0 : -1;
}

static void owners_free(Owners *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].owner);
    free(m->slots);
    free(m->moved);
}

/* 0, -1 out of memory, 1 crowded (the caller doubts). */
static int owners_grow(Owners *m) {
    Owners bigger = *m;
    bigger.cap = m->cap * 2;
    bigger.slots = calloc(bigger.cap, sizeof(Owner));
    if (!bigger.slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].owner) continue;
        size_t j = owners_find(&bigger, m->slots[i].owner, m->slots[i].len);
        if (j == CROWDED) {
            free(bigger.slots); /* the names are still the old table's */
            return 1;
        }
        bigger.slots[j] = m->slots[i];
    }
    /* the moved list holds slot indexes: rebuild it for the new table */
    bigger.nmoved = 0;
    for (size_t i = 0; i < bigger.cap; i++)
        if (bigger.slots[i].owner && bigger.slots[i].moved_mark == m->epoch)
            bigger.moved[bigger.nmoved++] = i;
    free(m->slots);
    *m = bigger;
    return 0;
}

/* The owner's slot, created (empty head) when new; SIZE_MAX when out of memory, CROWDED when
 * the map is being flooded. */
static size_t owners_get(Owners *m, const char *s, size_t n) {
    if ((m->used + 1) * 2 > m->cap) {
        int grown = owners_grow(m);
        if (grown) return grown < 0 ? SIZE_MAX : CROWDED;
    }
    size_t i = owners_find(m, s, n);
    if (i == CROWDED) return CROWDED;
    if (!m->slots[i].owner) {
        char *copy = malloc(n ? n : 1);
        if (!copy) return SIZE_MAX;
        memcpy(copy, s, n);
        m->slots[i].owner = copy;
        m->slots[i].len = n;
        m->slots[i].seq = 0;
        m->slots[i].first_set = 0;
        m->slots[i].moved_mark = -1;
        m->used++;
    }
    return i;
}

static int owners_mark_moved(Owners *m, size_t i) {
    if (m->slots[i].moved_mark == m->epoch) return 0;
    if (m->nmoved == m->moved_cap) {
        size_t cap = m->moved_cap ? m->moved_cap * 2 : 256;
        size_t *moved = realloc(m->moved, cap * sizeof(size_t));
        if (!moved) return -1;
        m->moved = moved;
        m->moved_cap = cap;
    }
    m->slots[i].moved_mark = m->epoch;
    m->moved[m->nmoved++] = i;
    return 0;
}

/* -------------------------------------------------------------- what the scan found (no GIL) */

typedef struct {
    char *name; /* owned by the map, which outlives the building of the result */
    size_t len;
    char head[HEX];
    int64_t seq;
    unsigned char leaf[32]; /* its Merkle leaf (camgate.audit.chain.leaf_hash), at checkpoints */
} Moved;

typedef struct {
    int64_t seq;
    char head[HEX];
    size_t start, end; /* its entries in Found.moved */
} Snapshot;

typedef struct {
    Moved *moved;
    size_t nmoved, moved_cap;
    Snapshot *snaps;
    size_t nsnaps, snaps_cap;
} Found;

/* SHA-256 of 0x00 and canonical({"head", "owner", "seq"}): camgate.audit.chain.leaf_hash. */
static int leaf_hash(EVP_MD_CTX *ctx, const EVP_MD *md, Buf *b, const Moved *t,
                     unsigned char *out) {
    char seqtxt[24];
    int seq_n = snprintf(seqtxt, sizeof seqtxt, "%lld", (long long)t->seq);
    unsigned int len;
    b->len = 0;
    if (buf_add(b, "\0{\"head\":\"", 10) || buf_add(b, t->head, HEX) ||
        BUF_LIT(b, "\",\"owner\":") ||
        buf_json_str(b, (const unsigned char *)t->name, t->len) || BUF_LIT(b, ",\"seq\":") ||
        buf_add(b, seqtxt, (size_t)seq_n) || BUF_LIT(b, "}"))
        return -1;
    if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, b->data, b->len) ||
        !EVP_DigestFinal_ex(ctx, out, &len))
        return -1;
    return 0;
}

/* Move the owners that moved in this epoch into f (with their leaves when ctx is given). */
static int found_take(Found *f, Owners *m, EVP_MD_CTX *ctx, const EVP_MD *md, Buf *scratch) {
    if (f->nmoved + m->nmoved > f->moved_cap) {
        size_t cap = f->moved_cap ? f->moved_cap : 256;
        while (cap < f->nmoved + m->nmoved) cap *= 2;
        Moved *moved = realloc(f->moved, cap * sizeof(Moved));
        if (!moved) return -1;
        f->moved = moved;
        f->moved_cap = cap;
    }
    for (size_t k = 0; k < m->nmoved; k++) {
        Owner *o = &m->slots[m->moved[k]];
        Moved *t = &f->moved[f->nmoved++];
        t->name = o->owner;
        t->len = o->len;
        memcpy(t->head, o->head, HEX);
        t->seq = o->seq;
        if (ctx && leaf_hash(ctx, md, scratch, t, t->leaf)) return -1;
    }
    m->nmoved = 0;
    m->epoch++;
    return 0;
}

/* ------------------------------------------------------------------------------- the scan */

enum { SCAN_OK = 0, SCAN_DOUBT = 1, SCAN_NOMEM = 2, SCAN_SQL = 3 };

typedef struct {
    /* in */
    const char *path;
    int has_after, has_until;
    int64_t after, until, lo;
    const int64_t *cps;
    size_t ncps;
    /* out */
    int64_t count;
    char first_link[HEX], last[HEX];
    int have_last;
    char sql_error[256];
} Scan;

/* The same ranges as camgate.audit.base.range_where: an unbounded side has no clause at all (a
 * bound of INT64_MIN or INT64_MAX would skip rows whose seq is not an integer, or is INT64_MIN,
 * which the other verifiers read and reject), and the first range takes NULL seqs too. */
#define SELECT_ROWS "SELECT seq, at, kind, body, owners, prev, hash FROM audit"
static const char *const SELECTS[2][2] = {
    {SELECT_ROWS " ORDER BY seq", SELECT_ROWS " WHERE (seq IS NULL OR seq <= ?2) ORDER BY seq"},
    {SELECT_ROWS " WHERE seq > ?1 ORDER BY seq",
     SELECT_ROWS " WHERE seq > ?1 AND seq <= ?2 ORDER BY seq"},
};

static const char GENESIS[HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static int hex_eq(const unsigned char *md, const unsigned char *hex) {
    static const char hexd[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++)
        if (hex[2 * i] != hexd[md[i] >> 4] || hex[2 * i + 1] != hexd[md[i] & 15]) return 0;
    return 1;
}

/* One pair of an owner map: "owner":"hash" with no escapes. Returns the text after it, or NULL
 * when the map is not in that plain form. */
static const char *owner_pair(const char *p, const char *end, const char **name, size_t *nlen,
                              const char **link) {
    if (p >= end || *p != '"') return NULL;
    const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
    if (!q) return NULL;
    *name = p + 1;
    *nlen = (size_t)(q - p - 1);
    for (const char *k = *name; k < q; k++) /* JSON forbids them raw: Python's parser refuses */
        if ((unsigned char)*k < 0x20) return NULL;
    if (q + 3 + HEX + 1 > end || q[1] != ':' || q[2] != '"' || q[3 + HEX] != '"') return NULL;
    *link = q + 3;
    return q + 4 + HEX;
}

static int scan_rows(Scan *s, Owners *owners, Found *found) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    Buf text = {0};
    int rc = SCAN_OK;
    if (!ctx || !sha256) {
        rc = SCAN_NOMEM;
        goto done;
    }
    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(db, 30000) != SQLITE_OK ||
        /* the file mapped, not copied page by page through read(): ~10 % of the scan's time */
        sqlite3_exec(db, "PRAGMA mmap_size=17179869184", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, SELECTS[s->has_after][s->has_until], -1, &st, NULL) != SQLITE_OK) {
        rc = SCAN_SQL;
        goto done;
    }
    if (s->has_after) sqlite3_bind_int64(st, 1, s->after);
    if (s->has_until) sqlite3_bind_int64(st, 2, s->until);
    int64_t n = s->lo;
    size_t next_cp = 0;
    const unsigned char *prev = NULL;
    char prev_buf[HEX];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        /* the type first: reading a column may convert it */
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER) {
            rc = SCAN_DOUBT;
            goto done;
        }
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq != ++n) {
            rc = SCAN_DOUBT;
            goto done;
        }
        /* at, kind, body, owners, prev, hash: text, strict UTF-8 (what Python reads as str) */
        const unsigned char *col[7];
        size_t len[7];
        for (int c = 1; c < 7; c++) {
            col[c] = sqlite3_column_type(st, c) == SQLITE_TEXT ? sqlite3_column_text(st, c) : NULL;
            len[c] = (size_t)sqlite3_column_bytes(st, c);
            if (!col[c] || !utf8_ok(col[c], len[c])) {
                rc = SCAN_DOUBT;
                goto done;
            }
        }
        const unsigned char *at = col[1], *kind = col[2], *body = col[3], *own = col[4];
        const unsigned char *link = col[5], *digest = col[6];
        size_t at_n = len[1], kind_n = len[2], body_n = len[3], own_n = len[4];
        if (len[5] != HEX || len[6] != HEX) {
            rc = SCAN_DOUBT;
            goto done;
        }
        if (prev == NULL)
            memcpy(s->first_link, link, HEX);
        else if (memcmp(link, prev_buf, HEX) != 0) {
            rc = SCAN_DOUBT;
            goto done;
        }
        int has_owners = !(own_n == 2 && own[0] == '{' && own[1] == '}');
        char seqtxt[24];
        int seq_n = snprintf(seqtxt, sizeof seqtxt, "%lld", (long long)seq);
        text.len = 0;
        if (BUF_LIT(&text, "{\"at\":") || buf_json_str(&text, at, at_n) ||
            BUF_LIT(&text, ",\"body\":") || buf_add(&text, body, body_n) ||
            BUF_LIT(&text, ",\"kind\":") || buf_json_str(&text, kind, kind_n) ||
            (has_owners && (BUF_LIT(&text, ",\"owners\":") || buf_add(&text, own, own_n))) ||
            BUF_LIT(&text, ",\"prev\":\"") || buf_add(&text, link, HEX) ||
            BUF_LIT(&text, "\",\"seq\":") || buf_add(&text, seqtxt, (size_t)seq_n) ||
            BUF_LIT(&text, "}")) {
            rc = SCAN_NOMEM;
            goto done;
        }
        if (!EVP_DigestInit_ex(ctx, sha256, NULL) ||
            !EVP_DigestUpdate(ctx, text.data, text.len) ||
            !EVP_DigestFinal_ex(ctx, md, &mdlen)) {
            rc = SCAN_NOMEM;
            goto done;
        }
        if (!hex_eq(md, digest)) {
            rc = SCAN_DOUBT;
            goto done;
        }
        if (has_owners) {
            const char *p = (const char *)own, *end = p + own_n;
            if (memchr(p, '\\', own_n) || *p != '{' || end[-1] != '}') {
                rc = SCAN_DOUBT;
                goto done;
            }
            p++;
            end--;
            while (p < end) {
                const char *name, *olink;
                size_t nlen;
                p = owner_pair(p, end, &name, &nlen, &olink);
                /* between pairs a comma, and after a comma another pair ("{..,}" is not JSON) */
                if (!p || (p < end && (*p++ != ',' || p == end))) {
                    rc = SCAN_DOUBT;
                    goto done;
                }
                size_t i = owners_get(owners, name, nlen);
                if (i == SIZE_MAX || i == CROWDED) {
                    rc = i == SIZE_MAX ? SCAN_NOMEM : SCAN_DOUBT;
                    goto done;
                }
                Owner *o = &owners->slots[i];
                if (o->seq == 0) { /* first seen in this range */
                    o->first_set = 1;
                    memcpy(o->first, olink, HEX);
                } else if (memcmp(o->head, olink, HEX) != 0) {
                    rc = SCAN_DOUBT;
                    goto done;
                }
                memcpy(o->head, digest, HEX);
                o->seq = seq;
                if (owners_mark_moved(owners, i)) {
                    rc = SCAN_NOMEM;
                    goto done;
                }
            }
        }
        memcpy(prev_buf, digest, HEX);
        prev = (const unsigned char *)prev_buf;
        if (next_cp < s->ncps && seq == s->cps[next_cp]) {
            if (found->nsnaps == found->snaps_cap) {
                size_t cap = found->snaps_cap ? found->snaps_cap * 2 : 64;
                Snapshot *snaps = realloc(found->snaps, cap * sizeof(Snapshot));
                if (!snaps) {
                    rc = SCAN_NOMEM;
                    goto done;
                }
                found->snaps = snaps;
                found->snaps_cap = cap;
            }
            Snapshot *sn = &found->snaps[found->nsnaps++];
            sn->seq = seq;
            memcpy(sn->head, digest, HEX);
            sn->start = found->nmoved;
            if (found_take(found, owners, ctx, sha256, &text)) {
                rc = SCAN_NOMEM;
                goto done;
            }
            sn->end = found->nmoved;
            next_cp++;
        }
    }
    if (step != SQLITE_DONE) {
        rc = SCAN_SQL;
        goto done;
    }
    if (next_cp != s->ncps) { /* a checkpoint in the range was not reached */
        rc = SCAN_DOUBT;
        goto done;
    }
    s->count = n - s->lo;
    s->have_last = prev != NULL;
    if (prev) memcpy(s->last, prev_buf, HEX);
    if (prev == NULL) memcpy(s->first_link, GENESIS, HEX);
done:
    if (rc == SCAN_SQL && db) snprintf(s->sql_error, sizeof s->sql_error, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (db) {
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    free(text.data);
    EVP_MD_free(sha256);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ------------------------------------------------------------------- back to Python objects */

static PyObject *hexstr(const char *h) { return PyUnicode_FromStringAndSize(h, HEX); }

static PyObject *moved_dict(const Moved *m, size_t start, size_t end) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t k = start; k < end; k++) {
        PyObject *key = PyUnicode_DecodeUTF8(m[k].name, (Py_ssize_t)m[k].len, "strict");
        PyObject *val = key ? Py_BuildValue("(NL)", hexstr(m[k].head), (long long)m[k].seq) : NULL;
        if (!val || PyDict_SetItem(d, key, val)) {
            Py_XDECREF(key);
            Py_XDECREF(val);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(val);
    }
    return d;
}

static PyObject *leaves_dict(const Moved *m, size_t start, size_t end) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t k = start; k < end; k++) {
        PyObject *key = PyUnicode_DecodeUTF8(m[k].name, (Py_ssize_t)m[k].len, "strict");
        PyObject *val = key ? PyBytes_FromStringAndSize((const char *)m[k].leaf, 32) : NULL;
        int bad = !val || PyDict_SetItem(d, key, val);
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (bad) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyObject *build_result(Scan *s, Owners *owners, Found *found) {
    PyObject *first = PyDict_New(), *snaps = PyList_New(0), *tail = NULL;
    if (!first || !snaps) goto fail;
    for (size_t i = 0; i < owners->cap; i++) {
        Owner *o = &owners->slots[i];
        if (!o->owner || !o->first_set) continue;
        PyObject *key = PyUnicode_DecodeUTF8(o->owner, (Py_ssize_t)o->len, "strict");
        PyObject *val = key ? hexstr(o->first) : NULL;
        int bad = !val || PyDict_SetItem(first, key, val);
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (bad) goto fail;
    }
    for (size_t k = 0; k < found->nsnaps; k++) {
        Snapshot *sn = &found->snaps[k];
        PyObject *item = Py_BuildValue("(LNNN)", (long long)sn->seq, hexstr(sn->head),
                                       moved_dict(found->moved, sn->start, sn->end),
                                       leaves_dict(found->moved, sn->start, sn->end));
        if (!item || PyList_Append(snaps, item)) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    /* the tail: owners that moved after the range's last checkpoint */
    Found rest = {0};
    if (found_take(&rest, owners, NULL, NULL, NULL)) {
        PyErr_NoMemory();
        goto fail;
    }
    tail = moved_dict(rest.moved, 0, rest.nmoved);
    free(rest.moved);
    if (!tail) goto fail;
    return Py_BuildValue("(LNNNNN)", (long long)s->count, hexstr(s->first_link),
                         hexstr(s->have_last ? s->last : GENESIS), first, snaps, tail);
fail:
    Py_XDECREF(first);
    Py_XDECREF(snaps);
    Py_XDECREF(tail);
    return NULL;
}

PyDoc_STRVAR(scan_sqlite_doc,
"scan_sqlite(path, after, until, lo, checkpoints) -> tuple | None\n\n"
"Check the audit rows after < seq <= until (None: unbounded) of the SQLite file at path, which\n"
"must be records lo+1, lo+2, ...; checkpoints are the checkpoint seqs in the range, ascending.\n"
"Returns (count, first_link, last, first_links, snapshots, tail) when every check holds, the\n"
"fields of camgate.audit.fastverify.RangeScan (with each snapshot's Merkle leaves), or None\n"
"at the first doubt. Raises OSError when the file cannot be read as an audit log.");

static PyObject *scan_sqlite(PyObject *self, PyObject *args) {
    PyObject *path_obj, *after_obj, *until_obj, *cps_obj;
    long long lo;
    if (!PyArg_ParseTuple(args, "O&OOLO", PyUnicode_FSConverter, &path_obj, &after_obj,
                          &until_obj, &lo, &cps_obj))
        return NULL;
    Scan s;
    memset(&s, 0, sizeof s);
    s.path = PyBytes_AS_STRING(path_obj);
    s.lo = lo;
    s.has_after = after_obj != Py_None;
    s.has_until = until_obj != Py_None;
    s.after = s.has_after ? PyLong_AsLongLong(after_obj) : 0;
    if (!PyErr_Occurred()) s.until = s.has_until ? PyLong_AsLongLong(until_obj) : 0;
    PyObject *seq = PyErr_Occurred()
                        ? NULL
                        : PySequence_Fast(cps_obj, "checkpoints must be a sequence of ints");
    if (!seq) {
        Py_DECREF(path_obj);
        return NULL;
    }
    Py_ssize_t ncps = PySequence_Fast_GET_SIZE(seq);
    int64_t *cps = malloc((size_t)(ncps ? ncps : 1) * sizeof(int64_t));
    if (!cps) {
        Py_DECREF(seq);
        Py_DECREF(path_obj);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < ncps; i++) {
        cps[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred()) {
            free(cps);
            Py_DECREF(seq);
            Py_DECREF(path_obj);
            return NULL;
        }
    }
    Py_DECREF(seq);
    s.cps = cps;
    s.ncps = (size_t)ncps;
    Owners owners;
    Found found = {0};
    if (owners_init(&owners)) {
        free(cps);
        Py_DECREF(path_obj);
        return PyErr_NoMemory();
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = scan_rows(&s, &owners, &found);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (rc == SCAN_OK)
        result = build_result(&s, &owners, &found);
    else if (rc == SCAN_DOUBT)
        result = Py_NewRef(Py_None);
    else if (rc == SCAN_NOMEM)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_OSError, "cannot read the audit log in %s: %s", s.path,
                     s.sql_error[0] ? s.sql_error : "SQLite error");
    owners_free(&owners);
    free(found.moved);
    free(found.snaps);
    free(cps);
    Py_DECREF(path_obj);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_sqlite", scan_sqlite, METH_VARARGS, scan_sqlite_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "camgate_native._verify",
    "The audit log's range check in C (see camgate.audit.fastverify).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__verify(void) { return PyModule_Create(&module); }
