/*
 * camgate_native._verify: one range of the audit log checked in C, straight from the store.
 *
 * The same checks as camgate.audit.fastverify.scan_range (read that docstring first): each
 * record's seq, its SHA-256 over the canonical text rebuilt from the stored texts, its link to the
 * record before it, and each owner's sub-chain link; the owner heads that moved are reported at
 * every checkpoint seq of the range for the Python merge. Like the Python fast path it only ever
 * answers "all good" (a tuple) or "let a slower verifier look" (None): it never names a bad
 * record. Anything unusual (an owner map with escapes, a column of an unexpected type) is a
 * doubt, not an error, so the result never depends on this file's parsing being complete.
 *
 * The checks (check_row) are fed by one of two readers: SQLite's, on its own read-only
 * connection inside one read transaction (a consistent snapshot that does not block appends),
 * and PostgreSQL's, which streams the range by COPY (binary format, parsed here) in one
 * REPEATABLE READ, READ ONLY transaction through libpq. The scan runs with the GIL released, so
 * several threads check several ranges at once. SHA-256 is OpenSSL's (the library Python's
 * hashlib uses).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/evp.h>
#include <libpq-fe.h>
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
    const char *path; /* the SQLite file, or the PostgreSQL connection string */
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

/* The checks of one range, fed one row at a time by a store's reader (SQLite or PostgreSQL). */
typedef struct {
    Scan *s;
    Owners *owners;
    Found *found;
    EVP_MD_CTX *ctx;
    EVP_MD *sha256;
    Buf text;
    int64_t n;
    size_t next_cp;
    int have_prev;
    char prev[HEX];
} Checker;

static int checker_init(Checker *k, Scan *s, Owners *owners, Found *found) {
    memset(k, 0, sizeof *k);
    k->s = s;
    k->owners = owners;
    k->found = found;
    k->n = s->lo;
    k->ctx = EVP_MD_CTX_new();
    k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    return k->ctx && k->sha256 ? SCAN_OK : SCAN_NOMEM;
}

static void checker_free(Checker *k) {
    free(k->text.data);
    EVP_MD_free(k->sha256);
    EVP_MD_CTX_free(k->ctx);
}

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

/* The owner links of one record (its owner map, not "{}"). */
static int check_owners(Checker *k, const unsigned char *own, size_t own_n, int64_t seq,
                        const unsigned char *digest) {
    const char *p = (const char *)own, *end = p + own_n;
    if (memchr(p, '\\', own_n) || *p != '{' || end[-1] != '}') return SCAN_DOUBT;
    p++;
    end--;
    while (p < end) {
        const char *name, *olink;
        size_t nlen;
        p = owner_pair(p, end, &name, &nlen, &olink);
        /* between pairs a comma, and after a comma another pair ("{..,}" is not JSON) */
        if (!p || (p < end && (*p++ != ',' || p == end))) return SCAN_DOUBT;
        size_t i = owners_get(k->owners, name, nlen);
        if (i == SIZE_MAX) return SCAN_NOMEM;
        if (i == CROWDED) return SCAN_DOUBT;
        Owner *o = &k->owners->slots[i];
        if (o->seq == 0) { /* first seen in this range */
            o->first_set = 1;
            memcpy(o->first, olink, HEX);
        } else if (memcmp(o->head, olink, HEX) != 0) {
            return SCAN_DOUBT;
        }
        memcpy(o->head, digest, HEX);
        o->seq = seq;
        if (owners_mark_moved(k->owners, i)) return SCAN_NOMEM;
    }
    return SCAN_OK;
}

/* The owner heads that moved since the previous checkpoint, at the checkpoint seq. */
static int take_snapshot(Checker *k, int64_t seq, const unsigned char *digest) {
    Found *found = k->found;
    if (found->nsnaps == found->snaps_cap) {
        size_t cap = found->snaps_cap ? found->snaps_cap * 2 : 64;
        Snapshot *snaps = realloc(found->snaps, cap * sizeof(Snapshot));
        if (!snaps) return SCAN_NOMEM;
        found->snaps = snaps;
        found->snaps_cap = cap;
    }
    Snapshot *sn = &found->snaps[found->nsnaps++];
    sn->seq = seq;
    memcpy(sn->head, digest, HEX);
    sn->start = found->nmoved;
    if (found_take(found, k->owners, k->ctx, k->sha256, &k->text)) return SCAN_NOMEM;
    sn->end = found->nmoved;
    return SCAN_OK;
}

/* seq in decimal, as "%lld" writes it (snprintf's cost showed in the profile); its length. */
static int int64_text(int64_t v, char out[24]) {
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    int len = 0;
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    return len;
}

/* One row: its seq, and col[1..6] = at, kind, body, owners, prev, hash (NULL: the value is
 * not text), each len[c] bytes. Text must be strict UTF-8: what Python reads as str. */
static int check_row(Checker *k, int64_t seq, const unsigned char *const col[7],
                     const size_t len[7]) {
    if (k->n == INT64_MAX || seq != ++k->n) return SCAN_DOUBT;
    for (int c = 1; c < 7; c++)
        if (!col[c] || !utf8_ok(col[c], len[c])) return SCAN_DOUBT;
    const unsigned char *at = col[1], *kind = col[2], *body = col[3], *own = col[4];
    const unsigned char *link = col[5], *digest = col[6];
    size_t own_n = len[4];
    if (len[5] != HEX || len[6] != HEX) return SCAN_DOUBT;
    if (!k->have_prev)
        memcpy(k->s->first_link, link, HEX);
    else if (memcmp(link, k->prev, HEX) != 0)
        return SCAN_DOUBT;
    int has_owners = !(own_n == 2 && own[0] == '{' && own[1] == '}');
    char seqtxt[24];
    int seq_n = int64_text(seq, seqtxt);
    Buf *text = &k->text;
    text->len = 0;
    if (BUF_LIT(text, "{\"at\":") || buf_json_str(text, at, len[1]) ||
        BUF_LIT(text, ",\"body\":") || buf_add(text, body, len[3]) ||
        BUF_LIT(text, ",\"kind\":") || buf_json_str(text, kind, len[2]) ||
        (has_owners && (BUF_LIT(text, ",\"owners\":") || buf_add(text, own, own_n))) ||
        BUF_LIT(text, ",\"prev\":\"") || buf_add(text, link, HEX) ||
        BUF_LIT(text, "\",\"seq\":") || buf_add(text, seqtxt, (size_t)seq_n) ||
        BUF_LIT(text, "}"))
        return SCAN_NOMEM;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    if (!EVP_DigestInit_ex(k->ctx, k->sha256, NULL) ||
        !EVP_DigestUpdate(k->ctx, text->data, text->len) ||
        !EVP_DigestFinal_ex(k->ctx, md, &mdlen))
        return SCAN_NOMEM;
    if (!hex_eq(md, digest)) return SCAN_DOUBT;
    if (has_owners) {
        int rc = check_owners(k, own, own_n, seq, digest);
        if (rc) return rc;
    }
    memcpy(k->prev, digest, HEX);
    k->have_prev = 1;
    if (k->next_cp < k->s->ncps && seq == k->s->cps[k->next_cp]) {
        int rc = take_snapshot(k, seq, digest);
        if (rc) return rc;
        k->next_cp++;
    }
    return SCAN_OK;
}

/* After the last row: every checkpoint of the range reached; the range's count and ends. */
static int checker_end(Checker *k) {
    Scan *s = k->s;
    if (k->next_cp != s->ncps) return SCAN_DOUBT; /* a checkpoint in the range was not reached */
    s->count = k->n - s->lo;
    s->have_last = k->have_prev;
    if (k->have_prev)
        memcpy(s->last, k->prev, HEX);
    else
        memcpy(s->first_link, GENESIS, HEX);
    return SCAN_OK;
}

/* ------------------------------------------------------------------------ SQLite's reader */

#define COLUMNS "seq, at, kind, body, owners, prev, hash"

/* The SELECT of the range's rows from table, for both stores: camgate.audit.base.rows_sql. An
 * unbounded side has no clause at all (a bound of INT64_MIN or INT64_MAX would skip rows whose
 * seq is not an integer, or is INT64_MIN, which the other verifiers read and reject), and the
 * first range takes NULL seqs too. The bounds are written in (COPY takes no parameters). */
static void rows_sql(const Scan *s, const char *table, char *out, size_t size) {
    char where[96] = "";
    if (!s->has_after && s->has_until)
        snprintf(where, sizeof where, "WHERE (seq IS NULL OR seq <= %lld) ", (long long)s->until);
    else if (s->has_after && !s->has_until)
        snprintf(where, sizeof where, "WHERE seq > %lld ", (long long)s->after);
    else if (s->has_after)
        snprintf(where, sizeof where, "WHERE seq > %lld AND seq <= %lld ", (long long)s->after,
                 (long long)s->until);
    snprintf(out, size, "SELECT " COLUMNS " FROM %s %sORDER BY seq", table, where);
}

static int scan_sqlite_rows(Checker *k) {
    Scan *s = k->s;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = SCAN_OK;
    char sql[256];
    rows_sql(s, "audit", sql, sizeof sql);
    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(db, 30000) != SQLITE_OK ||
        /* the file mapped, not copied page by page through read(): ~10 % of the scan's time */
        sqlite3_exec(db, "PRAGMA mmap_size=17179869184", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = SCAN_SQL;
        goto done;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        /* the type first: reading a column may convert it */
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER) {
            rc = SCAN_DOUBT;
            goto done;
        }
        int64_t seq = sqlite3_column_int64(st, 0);
        const unsigned char *col[7] = {NULL};
        size_t len[7] = {0};
        for (int c = 1; c < 7; c++) {
            col[c] = sqlite3_column_type(st, c) == SQLITE_TEXT ? sqlite3_column_text(st, c) : NULL;
            len[c] = (size_t)sqlite3_column_bytes(st, c);
        }
        rc = check_row(k, seq, col, len);
        if (rc) goto done;
    }
    rc = step == SQLITE_DONE ? checker_end(k) : SCAN_SQL;
done:
    if (rc == SCAN_SQL && db) snprintf(s->sql_error, sizeof s->sql_error, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (db) {
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    return rc;
}

/* -------------------------------------------------------------------- PostgreSQL's reader */

/* The range arrives as COPY's binary format, one row per CopyData message (PostgreSQL sends
 * each row in its own): first the 11-byte signature, flags and header extension, then per row a
 * 16-bit field count and per field a 32-bit length (-1: NULL) and the value (bigint: 8 bytes big
 * endian; text: its bytes in the client encoding, UTF8 here), then a count of -1. The binary
 * form costs the server less than text and needs no unescaping here. Anything else is a doubt:
 * the Python scan, which reads the rows through psycopg, then looks. */
static const unsigned char COPY_SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r',
                                                 '\n', 0};

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

typedef struct {
    int header_seen, trailer_seen;
} CopyState;

/* One CopyData message: the header (with the first row after it, or alone), a row, or the
 * trailer. */
static int check_copy_message(Checker *k, CopyState *cs, const unsigned char *p, size_t n) {
    if (cs->trailer_seen) return SCAN_DOUBT; /* nothing may follow the trailer */
    if (!cs->header_seen) {
        if (n < 19 || memcmp(p, COPY_SIGNATURE, 11) != 0 || be32(p + 11) != 0) return SCAN_DOUBT;
        uint32_t ext = be32(p + 15);
        if (ext > n - 19) return SCAN_DOUBT;
        p += 19 + ext;
        n -= 19 + ext;
        cs->header_seen = 1;
        if (n == 0) return SCAN_OK;
    }
    if (n < 2) return SCAN_DOUBT;
    uint16_t fields = (uint16_t)(p[0] << 8 | p[1]);
    if (fields == 0xFFFF) { /* -1: the trailer, alone in its message */
        cs->trailer_seen = 1;
        return n == 2 ? SCAN_OK : SCAN_DOUBT;
    }
    if (fields != 7) return SCAN_DOUBT;
    const unsigned char *col[7];
    size_t len[7];
    size_t at = 2;
    for (int c = 0; c < 7; c++) {
        if (n - at < 4) return SCAN_DOUBT;
        uint32_t flen = be32(p + at);
        at += 4;
        if (flen == 0xFFFFFFFFu) { /* NULL */
            col[c] = NULL;
            len[c] = 0;
            continue;
        }
        if (flen > n - at) return SCAN_DOUBT;
        col[c] = p + at;
        len[c] = flen;
        at += flen;
    }
    if (at != n || !col[0] || len[0] != 8) return SCAN_DOUBT;
    uint64_t u = (uint64_t)be32(col[0]) << 32 | be32(col[0] + 4);
    return check_row(k, (int64_t)u, col, len);
}

/* pg_type.oid of bigint and text (fixed: src/include/catalog/pg_type.dat) */
#define INT8_OID 20
#define TEXT_OID 25

/* libpq's error, first line, with the password (if any) replaced by *** wherever it shows. */
static int pg_fail(Scan *s, PGconn *conn, const char *password) {
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    size_t n = strcspn(msg, "\n"), pw = password ? strlen(password) : 0, o = 0;
    for (size_t i = 0; i < n && o + 4 < sizeof s->sql_error;) {
        if (pw && n - i >= pw && memcmp(msg + i, password, pw) == 0) {
            memcpy(s->sql_error + o, "***", 3);
            o += 3;
            i += pw;
        } else {
            s->sql_error[o++] = msg[i++];
        }
    }
    s->sql_error[o] = 0;
    return SCAN_SQL;
}

/* The range as COPY from the audit table, named once: its OID is looked up, and the type check
 * and the COPY both read that table by its schema-qualified name (a table of the same name put
 * earlier on the search_path meanwhile is not read instead). */
static int scan_pg_rows(Checker *k) {
    Scan *s = k->s;
    int rc = SCAN_OK;
    PGresult *res = NULL;
    PGconn *conn = NULL;
    char *password = NULL;
    /* The connection string is parsed first: libpq's errors about a malformed one quote it,
     * password and all, so those get a fixed message instead. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(s->path, &perr);
    if (!opts) {
        snprintf(s->sql_error, sizeof s->sql_error, "the connection string cannot be parsed");
        PQfreemem(perr);
        return SCAN_SQL;
    }
    int nomem = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            nomem = !(password = strdup(o->val));
    PQconninfoFree(opts);
    if (nomem) return SCAN_NOMEM;
    /* the caller's settings win over the time-out: the connection string is expanded last */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const values[] = {"30", s->path, NULL};
    conn = PQconnectdbParams(keys, values, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    /* UTF-8 both ways, or doubt: psycopg decodes in the connection's client encoding, and the
     * server's conversion tables and Python's codecs disagree on some characters (EUC_JP's
     * 0xA1C1, say), so text that is not UTF-8 end to end is left to the Python scan. */
    const char *server_enc = PQparameterStatus(conn, "server_encoding");
    const char *client_enc = PQparameterStatus(conn, "client_encoding");
    if (!server_enc || !client_enc || strcmp(server_enc, "UTF8") || strcmp(client_enc, "UTF8")) {
        rc = SCAN_DOUBT;
        goto done;
    }
    res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                       "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.oid = 'audit'::regclass");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    Oid table_oid = (Oid)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    char table[300];
    if ((size_t)PQgetlength(res, 0, 1) >= sizeof table) {
        rc = SCAN_DOUBT;
        goto done;
    }
    snprintf(table, sizeof table, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    /* The columns' types: bigint and text, as camgate creates them, or doubt (a seq stored as
     * text would be read by psycopg as a str, which the Python scan refuses), and each from that
     * table. The lock this takes holds until the transaction ends: no ALTER or RENAME of the
     * table between this look and the COPY. */
    char sql[640]; /* the COPY of a SELECT of at most 511 bytes */
    snprintf(sql, sizeof sql, "SELECT " COLUMNS " FROM %s LIMIT 0", table);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 7) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    for (int c = 0; c < 7; c++)
        if (PQftype(res, c) != (c == 0 ? INT8_OID : TEXT_OID) || PQftable(res, c) != table_oid) {
            rc = SCAN_DOUBT;
            goto done;
        }
    PQclear(res);
    /* The primary key's order, read in order: without statistics the planner may choose a
     * parallel scan and a sort of the whole range, which costs the server more than the scan. */
    res = PQexec(conn, "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
                       "SET LOCAL max_parallel_workers_per_gather = 0");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    PQclear(res);
    char select[512];
    rows_sql(s, table, select, sizeof select);
    snprintf(sql, sizeof sql, "COPY (%s) TO STDOUT (FORMAT binary)", select);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT || PQbinaryTuples(res) != 1) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    PQclear(res);
    res = NULL;
    CopyState cs = {0, 0};
    char *msg;
    int n;
    while ((n = PQgetCopyData(conn, &msg, 0)) > 0) {
        rc = check_copy_message(k, &cs, (const unsigned char *)msg, (size_t)n);
        PQfreemem(msg);
        if (rc) goto done; /* closing the connection ends the COPY on the server */
    }
    if (n == -2) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(s, conn, password);
        goto done;
    }
    rc = cs.trailer_seen ? checker_end(k) : SCAN_DOUBT;
done:
    PQclear(res);
    PQfinish(conn);
    free(password);
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


typedef int (*RowSource)(Checker *k);

/* scan_sqlite and scan_postgres: parse the arguments, run source without the GIL, build the
 * result. */
static PyObject *run_scan(PyObject *args, RowSource source, const char *store) {
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
    Checker k;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = checker_init(&k, &s, &owners, &found);
    if (rc == SCAN_OK) rc = source(&k);
    checker_free(&k);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (rc == SCAN_OK) {
        /* a few hundred thousand dicts and tuples, none cyclic: no collection while they grow
         * (the collector's passes over them were a tenth of a PostgreSQL scan's time) */
        int gc_was_on = PyGC_Disable();
        result = build_result(&s, &owners, &found);
        if (gc_was_on) PyGC_Enable();
    }
    else if (rc == SCAN_DOUBT)
        result = Py_NewRef(Py_None);
    else if (rc == SCAN_NOMEM)
        PyErr_NoMemory();
    else if (source == scan_sqlite_rows)
        PyErr_Format(PyExc_OSError, "cannot read the audit log in %s: %s", s.path,
                     s.sql_error[0] ? s.sql_error : "SQLite error");
    else /* never the connection string: it may hold the password */
        PyErr_Format(PyExc_OSError, "cannot read the audit log from %s: %s", store,
                     s.sql_error[0] ? s.sql_error : "error");
    owners_free(&owners);
    free(found.moved);
    free(found.snaps);
    free(cps);
    Py_DECREF(path_obj);
    return result;
}

PyDoc_STRVAR(scan_sqlite_doc,
"scan_sqlite(path, after, until, lo, checkpoints) -> tuple | None\n\n"
"Check the audit rows after < seq <= until (None: unbounded) of the SQLite file at path, which\n"
"must be records lo+1, lo+2, ...; checkpoints are the checkpoint seqs in the range, ascending.\n"
"Returns (count, first_link, last, first_links, snapshots, tail) when every check holds, the\n"
"fields of camgate.audit.fastverify.RangeScan (with each snapshot's Merkle leaves), or None\n"
"at the first doubt. Raises OSError when the file cannot be read as an audit log.");

static PyObject *scan_sqlite(PyObject *self, PyObject *args) {
    return run_scan(args, scan_sqlite_rows, "SQLite");
}

PyDoc_STRVAR(scan_postgres_doc,
"scan_postgres(conninfo, after, until, lo, checkpoints) -> tuple | None\n\n"
"As scan_sqlite, for the audit log in the PostgreSQL database named by conninfo (a libpq\n"
"connection string or URI): the rows are streamed by COPY in one REPEATABLE READ, READ ONLY\n"
"transaction. Raises OSError (never naming the connection string) when the database cannot\n"
"be read.");

static PyObject *scan_postgres(PyObject *self, PyObject *args) {
    return run_scan(args, scan_pg_rows, "PostgreSQL");
}

static PyMethodDef methods[] = {
    {"scan_sqlite", scan_sqlite, METH_VARARGS, scan_sqlite_doc},
    {"scan_postgres", scan_postgres, METH_VARARGS, scan_postgres_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "camgate_native._verify",
    "The audit log's range check in C (see camgate.audit.fastverify).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__verify(void) { return PyModule_Create(&module); }
