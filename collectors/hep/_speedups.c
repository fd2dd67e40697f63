/*
 * collectors.hep._speedups -- the HEP collector's hot path in C.
 *
 * Functions with the signatures of their pure-Python references:
 *
 *   decode(data)                       == collectors.hep.decode.decode_pure(data)
 *   parse_fields(data, *, correlation_headers=("x-cid",), max_message_bytes=65535)
 *                                      == collectors.hep.sip.parse_fields_pure(...)
 *
 * and, for the processors, sip_row(env) == schemas.tables._wire_sip_row(env)[1] (see its section).
 *
 * Each handles the common case itself and hands every other input, unchanged, to the
 * Python function it was configured with (configure_decode(), configure_sip()): HEPv1/v2, compressed or truncated
 * HEP3, any malformed packet; SIP messages with a byte >= 0x80, bare-LF or folded lines,
 * anything that would raise. So errors (class, reason, message) always come from the
 * Python code, and what this module returns is what the Python code returns: the
 * differential tests in tests/hep/test_speedups.py compare the two on every corpus packet,
 * the benchmark mix, the traffic generators and generated and mutated inputs.
 *
 * Value syntax that is not in the common shapes (name-addr with escapes or without "<",
 * SDP and VQ report bodies) is read by calling the Python functions of sip_headers / sdp.
 *
 * Python's str whitespace (str.strip(), str.split(), the re module's \s) in ASCII is
 * " \t\n\v\f\r" and \x1c-\x1f: IS_WS below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ configuration */

static PyObject *HepPacketType;  /* collectors.hep.packet.HepPacket */
static PyObject *decode_fallback; /* collectors.hep.decode.decode_pure */
static PyObject *parse_fallback;  /* collectors.hep.sip.parse_fields_pure */
static PyObject *py_name_addr;    /* collectors.hep.sip_headers.name_addr */
static PyObject *static_codecs;   /* collectors.hep.sdp.STATIC_CODECS */
static PyObject *py_vq_report;    /* collectors.hep.sdp.parse_vq_report */
static PyObject *default_correlation; /* ("x-cid",) */
static PyObject *py_ts_text;      /* collectors.hep.events.ts_text */
static PyObject *seconds_cache;   /* collectors.hep.events._SECONDS */

#define MAX_TABLE 64
typedef struct {
    char name[64];
    Py_ssize_t len;
    PyObject *value; /* str: the canonical name (COMPACT) or the kept spelling (KEPT_HEADERS) */
} table_entry;

static table_entry compact_table[MAX_TABLE];
static int compact_count;
static table_entry kept_table[MAX_TABLE];
static int kept_count;
static table_entry multi_table[MAX_TABLE];
static int multi_count;

/* Interned dict keys, in SipFields order. */
enum {
    K_IS_REQUEST, K_METHOD, K_REQUEST_URI, K_STATUS, K_REASON, K_CALL_ID, K_CSEQ,
    K_FROM_USER, K_FROM_DISPLAY, K_FROM_URI, K_FROM_TAG, K_TO_USER, K_TO_DISPLAY, K_TO_URI, K_TO_TAG,
    K_VIA_BRANCH, K_VIA_BRANCHES, K_CONTACT, K_USER_AGENT, K_SERVER, K_PAI, K_PAI_USER,
    K_SESSION_ID, K_EXPIRES, K_REASON_HEADER, K_CONTENT_TYPE, K_CORRELATION, K_SDP, K_VQ_REPORT,
    K_HEADERS, K_RAW, K_COUNT
};
static const char *key_names[K_COUNT] = {
    "is_request", "method", "request_uri", "status", "reason", "call_id", "cseq",
    "from_user", "from_display", "from_uri", "from_tag", "to_user", "to_display", "to_uri", "to_tag",
    "via_branch", "via_branches", "contact", "user_agent", "server", "pai", "pai_user",
    "session_id", "expires", "reason_header", "content_type", "correlation", "sdp", "vq_report",
    "headers", "raw",
};
static PyObject *keys[K_COUNT];
static PyObject *kw_correlation_headers;
static PyObject *kw_max_message_bytes;

static int
load_table(PyObject *mapping, table_entry *table, int *count, int with_values)
{
    /* mapping: a dict (name -> value) or, with_values == 0, any iterable of names. */
    PyObject *it = PyObject_GetIter(mapping);
    if (it == NULL)
        return -1;
    PyObject *name;
    int n = 0;
    while ((name = PyIter_Next(it)) != NULL) {
        Py_ssize_t len;
        const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL;
        if (text == NULL || len >= 64 || n >= MAX_TABLE || !PyUnicode_IS_ASCII(name)) {
            Py_DECREF(name);
            Py_DECREF(it);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "header tables: short ASCII names only");
            return -1;
        }
        memcpy(table[n].name, text, (size_t)len);
        table[n].len = len;
        Py_XDECREF(table[n].value);
        table[n].value = NULL;
        if (with_values) {
            PyObject *value = PyObject_GetItem(mapping, name);
            if (value == NULL || !PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value)) {
                Py_XDECREF(value);
                Py_DECREF(name);
                Py_DECREF(it);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "header tables: ASCII values only");
                return -1;
            }
            table[n].value = value;
        }
        Py_DECREF(name);
        n++;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    *count = n;
    return 0;
}

/* HepPacket's fields in order; a slots dataclass keeps each in a slot at a fixed offset. */
#define N_FIELDS 21
static const char *field_names[N_FIELDS] = {
    "version", "family", "protocol", "src_ip", "src_port", "dst_ip", "dst_port", "ts_sec", "ts_usec",
    "payload_type", "payload", "capture_id", "capture_name", "auth_key", "compressed", "correlation_id", "vlan",
    "keepalive", "truncated", "extra", "raw",
};
static Py_ssize_t field_offsets[N_FIELDS];
static int fill_slots; /* 1: build packets by filling the slots, 0: by calling the class */

static int
find_slots(PyObject *cls)
{
    if (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_init == NULL)
        return 0;
    PyObject *fields = PyObject_GetAttrString(cls, "__dataclass_fields__");
    if (fields == NULL) {
        PyErr_Clear();
        return 0;
    }
    int ok = PyDict_Check(fields) && PyDict_GET_SIZE(fields) == N_FIELDS;
    Py_ssize_t pos = 0, i = 0;
    PyObject *name, *value;
    while (ok && PyDict_Next(fields, &pos, &name, &value)) { /* same names, same order as the arguments */
        ok = PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, field_names[i]) == 0;
        PyObject *descr = ok ? PyDict_GetItemWithError(((PyTypeObject *)cls)->tp_dict, name) : NULL;
        ok = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
             ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (ok)
            field_offsets[i++] = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    Py_DECREF(fields);
    PyErr_Clear();
    return ok && i == N_FIELDS;
}

static PyObject *
configure_decode(PyObject *self, PyObject *args)
{
    PyObject *hep_packet, *dec;
    if (!PyArg_ParseTuple(args, "OO:configure_decode", &hep_packet, &dec))
        return NULL;
    fill_slots = find_slots(hep_packet);
    Py_INCREF(hep_packet);
    Py_XSETREF(HepPacketType, hep_packet);
    Py_INCREF(dec);
    Py_XSETREF(decode_fallback, dec);
    Py_RETURN_NONE;
}

static PyObject *
configure_sip(PyObject *self, PyObject *args)
{
    PyObject *parse, *name_addr, *codecs, *vq, *compact, *kept, *multi;
    if (!PyArg_ParseTuple(args, "OOO!OO!O!O:configure_sip", &parse, &name_addr, &PyDict_Type, &codecs, &vq,
                          &PyDict_Type, &compact, &PyDict_Type, &kept, &multi))
        return NULL;
    if (load_table(compact, compact_table, &compact_count, 1) < 0 ||
        load_table(kept, kept_table, &kept_count, 1) < 0 || load_table(multi, multi_table, &multi_count, 0) < 0)
        return NULL;
    Py_INCREF(parse);
    Py_XSETREF(parse_fallback, parse);
    Py_INCREF(name_addr);
    Py_XSETREF(py_name_addr, name_addr);
    Py_INCREF(codecs);
    Py_XSETREF(static_codecs, codecs);
    Py_INCREF(vq);
    Py_XSETREF(py_vq_report, vq);
    Py_RETURN_NONE;
}

static int
configured(PyObject *what)
{
    if (what == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "collectors.hep._speedups is not configured");
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ small helpers */

#define IS_WS(c) ((c) == ' ' || ((c) >= 9 && (c) <= 13) || ((c) >= 0x1c && (c) <= 0x1f))
#define IS_SPTAB(c) ((c) == ' ' || (c) == '\t')
#define LOWER(c) (((c) >= 'A' && (c) <= 'Z') ? (char)((c) + 32) : (c))

/* A str from ASCII bytes (the caller has checked that every byte is < 0x80). */
static PyObject *
astr(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL && n > 0)
        memcpy(PyUnicode_DATA(s), p, (size_t)n);
    return s;
}

/* str(p, n) or None when n == 0 (Python's ``x or None``). */
static PyObject *
astr_or_none(const char *p, Py_ssize_t n)
{
    if (n == 0)
        Py_RETURN_NONE;
    return astr(p, n);
}

static void
strip_ws(const char **p, Py_ssize_t *n)
{
    const char *s = *p;
    Py_ssize_t len = *n;
    while (len > 0 && IS_WS((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && IS_WS((unsigned char)s[len - 1]))
        len--;
    *p = s;
    *n = len;
}

static int
ci_prefix(const char *p, Py_ssize_t n, const char *lower_word)
{
    Py_ssize_t k = (Py_ssize_t)strlen(lower_word);
    if (n < k)
        return 0;
    for (Py_ssize_t i = 0; i < k; i++)
        if (LOWER(p[i]) != lower_word[i])
            return 0;
    return 1;
}

/* sip_headers.digits: 1-10 ASCII digits -> value, else -1. */
static long long
digits(const char *p, Py_ssize_t n)
{
    if (n < 1 || n > 10)
        return -1;
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static PyObject *
digits_obj(const char *p, Py_ssize_t n)
{
    long long v = digits(p, n);
    if (v < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

/* ------------------------------------------------------------------ HEP3 decode */

static PyObject *
address_text(const unsigned char *v, Py_ssize_t len)
{
    char buf[INET6_ADDRSTRLEN];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const char *r;
    if (len == 4)
        r = inet_ntop(AF_INET, v, buf, sizeof buf);
    else if (memcmp(v, mapped, 12) == 0)
        r = inet_ntop(AF_INET, v + 12, buf, sizeof buf);
    else
        r = inet_ntop(AF_INET6, v, buf, sizeof buf);
    if (r == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_FromString(buf);
}

static PyObject *
text_utf8_or_latin1(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_DecodeUTF8(p, n, NULL);
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        s = PyUnicode_DecodeLatin1(p, n, NULL);
    }
    return s;
}

static inline unsigned
be16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static inline unsigned long
be32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8) | p[3];
}

static PyObject *
call_fallback(PyObject *func, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(func, args, nargsf, kwnames);
}

static PyObject *
decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured(decode_fallback))
        return NULL;
    if (nargs != 1 || !PyBytes_CheckExact(args[0]))
        return call_fallback(decode_fallback, args, (size_t)nargs, NULL);
    PyObject *data = args[0];
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (n < 6 || memcmp(d, "HEP3", 4) != 0)
        return call_fallback(decode_fallback, args, 1, NULL);
    Py_ssize_t total = be16(d + 4);
    if (total < 6 || total > n) /* errors, and truncated packets: Python */
        return call_fallback(decode_fallback, args, 1, NULL);
    Py_ssize_t end = total;

    /* First pass: check every chunk as the Python walk does; any error -> Python. */
    int family = 0, protocol = 0, payload_type = 1;
    unsigned long src_port = 0, dst_port = 0, ts_sec = 0, ts_usec = 0, capture_id = 0, vlan = 0;
    int have_capture_id = 0, have_vlan = 0, compressed = 0, n_extra = 0;
    Py_ssize_t src_off = -1, src_len = 0, dst_off = -1, dst_len = 0;
    Py_ssize_t payload_off = -1, payload_len = 0, auth_off = -1, auth_len = 0;
    Py_ssize_t corr_off = -1, corr_len = 0, name_off = -1, name_len = 0;
    Py_ssize_t off = 6;
    while (off < end) {
        if (off + 6 > end)
            return call_fallback(decode_fallback, args, 1, NULL);
        unsigned vendor = be16(d + off), ctype = be16(d + off + 2);
        Py_ssize_t clen = be16(d + off + 4), stop = off + clen, vs = off + 6, vlen = clen - 6;
        if (clen < 6 || stop > end)
            return call_fallback(decode_fallback, args, 1, NULL);
        if (vendor != 0 || ctype > 0x13 || ctype == 0x00 || ctype == 0x0D) {
            n_extra++;
        }
        else {
            switch (ctype) {
            case 0x0F:
            case 0x10:
                payload_off = vs;
                payload_len = vlen;
                compressed = ctype == 0x10;
                break;
            case 0x0E:
                auth_off = vs;
                auth_len = vlen;
                break;
            case 0x11:
                corr_off = vs;
                corr_len = vlen;
                break;
            case 0x01:
            case 0x02:
            case 0x0B:
                if (clen != 7)
                    return call_fallback(decode_fallback, args, 1, NULL);
                if (ctype == 0x01)
                    family = d[vs];
                else if (ctype == 0x02)
                    protocol = d[vs];
                else
                    payload_type = d[vs];
                break;
            case 0x03:
            case 0x04:
            case 0x05:
            case 0x06:
                if (!(vlen == 16 || (vlen == 4 && ctype <= 0x04)))
                    return call_fallback(decode_fallback, args, 1, NULL);
                if (ctype == 0x03 || ctype == 0x05) {
                    src_off = vs;
                    src_len = vlen;
                }
                else {
                    dst_off = vs;
                    dst_len = vlen;
                }
                break;
            case 0x07:
            case 0x08:
                if (clen != 8)
                    return call_fallback(decode_fallback, args, 1, NULL);
                if (ctype == 0x07)
                    src_port = be16(d + vs);
                else
                    dst_port = be16(d + vs);
                break;
            case 0x09:
            case 0x0A:
                if (clen != 10)
                    return call_fallback(decode_fallback, args, 1, NULL);
                if (ctype == 0x09)
                    ts_sec = be32(d + vs);
                else
                    ts_usec = be32(d + vs);
                break;
            case 0x0C:
                if (clen == 10)
                    capture_id = be32(d + vs);
                else if (clen == 8)
                    capture_id = be16(d + vs);
                else
                    return call_fallback(decode_fallback, args, 1, NULL);
                have_capture_id = 1;
                break;
            case 0x12:
                if (clen != 8)
                    return call_fallback(decode_fallback, args, 1, NULL);
                vlan = be16(d + vs);
                have_vlan = 1;
                break;
            case 0x13:
                name_off = vs;
                name_len = vlen;
                break;
            default: /* not reached: every type 0x00-0x13 is above */
                return call_fallback(decode_fallback, args, 1, NULL);
            }
        }
        off = stop;
    }
    if (compressed) /* zlib: Python */
        return call_fallback(decode_fallback, args, 1, NULL);

    PyObject *v[21] = {NULL};
    PyObject *extra = PyList_New(n_extra);
    if (extra == NULL)
        return NULL;
    /* Second pass: the kept chunks, in order. */
    if (n_extra) {
        Py_ssize_t i = 0;
        for (off = 6; off < end;) {
            unsigned vendor = be16(d + off), ctype = be16(d + off + 2);
            Py_ssize_t clen = be16(d + off + 4);
            if (vendor != 0 || ctype > 0x13 || ctype == 0x00 || ctype == 0x0D) {
                PyObject *t = Py_BuildValue("(IIy#)", vendor, ctype, (const char *)d + off + 6, clen - 6);
                if (t == NULL) {
                    Py_DECREF(extra);
                    return NULL;
                }
                PyList_SET_ITEM(extra, i++, t);
            }
            off += clen;
        }
    }
    PyObject *src = src_off >= 0 ? address_text(d + src_off, src_len) : PyUnicode_FromStringAndSize("", 0);
    PyObject *dst = dst_off >= 0 ? address_text(d + dst_off, dst_len) : PyUnicode_FromStringAndSize("", 0);
    PyObject *result = NULL;
    if (src == NULL || dst == NULL)
        goto done;
    if (family == 0) {
        Py_ssize_t found = PyUnicode_FindChar(src, ':', 0, PyUnicode_GET_LENGTH(src), 1);
        family = found >= 0 ? 10 : 2;
    }
    v[0] = PyLong_FromLong(3);
    v[1] = PyLong_FromLong(family);
    v[2] = PyLong_FromLong(protocol);
    v[3] = src;
    src = NULL;
    v[4] = PyLong_FromUnsignedLong(src_port);
    v[5] = dst;
    dst = NULL;
    v[6] = PyLong_FromUnsignedLong(dst_port);
    v[7] = PyLong_FromUnsignedLong(ts_sec);
    v[8] = PyLong_FromUnsignedLong(ts_usec);
    v[9] = PyLong_FromLong(payload_type);
    v[10] = payload_off >= 0 ? PyBytes_FromStringAndSize((const char *)d + payload_off, payload_len)
                             : PyBytes_FromStringAndSize("", 0);
    v[11] = have_capture_id ? PyLong_FromUnsignedLong(capture_id) : Py_NewRef(Py_None);
    v[12] = name_off >= 0 ? text_utf8_or_latin1((const char *)d + name_off, name_len) : Py_NewRef(Py_None);
    v[13] = auth_off >= 0 ? PyBytes_FromStringAndSize((const char *)d + auth_off, auth_len) : Py_NewRef(Py_None);
    v[14] = Py_NewRef(Py_False);
    v[15] = corr_off >= 0 ? text_utf8_or_latin1((const char *)d + corr_off, corr_len) : Py_NewRef(Py_None);
    v[16] = have_vlan ? PyLong_FromUnsignedLong(vlan) : Py_NewRef(Py_None);
    v[17] = Py_NewRef(payload_off < 0 ? Py_True : Py_False);
    v[18] = Py_NewRef(Py_False);
    v[19] = extra;
    extra = NULL;
    v[20] = Py_NewRef(data);
    for (int i = 0; i < 21; i++)
        if (v[i] == NULL)
            goto done;
    if (fill_slots) { /* what the dataclass __init__ does: set each field */
        PyTypeObject *type = (PyTypeObject *)HepPacketType;
        result = type->tp_alloc(type, 0);
        if (result != NULL) {
            for (int i = 0; i < N_FIELDS; i++) {
                *(PyObject **)((char *)result + field_offsets[i]) = v[i];
                v[i] = NULL;
            }
        }
    }
    else {
        result = PyObject_Vectorcall(HepPacketType, v, N_FIELDS, NULL);
    }
done:
    for (int i = 0; i < 21; i++)
        Py_XDECREF(v[i]);
    Py_XDECREF(src);
    Py_XDECREF(dst);
    Py_XDECREF(extra);
    return result;
}

/* ------------------------------------------------------------------ SIP */

#define MAX_HEADER_LINES 256
#define MAX_HEADER_LINE 8192

typedef struct {
    const char *key; /* canonical lower-case name */
    Py_ssize_t klen;
    const char *val; /* stripped first value ... */
    Py_ssize_t vlen;
    char *joined;     /* ... or, after repeats of a comma-list header, "v1, v2, ..." (malloc) */
    Py_ssize_t jlen, jcap;
    PyObject *str; /* the value as str, made on first use */
} header;

typedef struct {
    header h[MAX_HEADER_LINES];
    int count;
    char *keybuf;
} head_t;

static void
head_free(head_t *head)
{
    for (int i = 0; i < head->count; i++) {
        free(head->h[i].joined);
        Py_XDECREF(head->h[i].str);
    }
    free(head->keybuf);
}

static header *
find(head_t *head, const char *key, Py_ssize_t klen)
{
    for (int i = 0; i < head->count; i++)
        if (head->h[i].klen == klen && memcmp(head->h[i].key, key, (size_t)klen) == 0)
            return &head->h[i];
    return NULL;
}

#define FIND(head, lit) find((head), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static void
hvalue(const header *h, const char **p, Py_ssize_t *n)
{
    if (h->joined != NULL) {
        *p = h->joined;
        *n = h->jlen;
    }
    else {
        *p = h->val;
        *n = h->vlen;
    }
}

/* New reference to the header's value as str. */
static PyObject *
hstr(header *h)
{
    if (h->str == NULL) {
        const char *p;
        Py_ssize_t n;
        hvalue(h, &p, &n);
        h->str = astr(p, n);
        if (h->str == NULL)
            return NULL;
    }
    return Py_NewRef(h->str);
}

static int
in_table(const table_entry *table, int count, const char *p, Py_ssize_t n)
{
    for (int i = 0; i < count; i++)
        if (table[i].len == n && memcmp(table[i].name, p, (size_t)n) == 0)
            return i;
    return -1;
}

static int
join_value(header *h, const char *p, Py_ssize_t n)
{
    Py_ssize_t need = (h->joined ? h->jlen : h->vlen) + 2 + n;
    if (h->joined == NULL) {
        h->jcap = need * 2 + 16;
        h->joined = malloc((size_t)h->jcap);
        if (h->joined == NULL)
            return -1;
        memcpy(h->joined, h->val, (size_t)h->vlen);
        h->jlen = h->vlen;
    }
    else if (need > h->jcap) {
        h->jcap = need * 2;
        char *grown = realloc(h->joined, (size_t)h->jcap);
        if (grown == NULL)
            return -1;
        h->joined = grown;
    }
    memcpy(h->joined + h->jlen, ", ", 2);
    memcpy(h->joined + h->jlen + 2, p, (size_t)n);
    h->jlen += 2 + n;
    return 0;
}

/*
 * The head (start line and header lines, "\n"-separated, without the blank line), as
 * sip._head reads it. Returns 1 when parsed, 0 when the Python path must take the message
 * (whatever _head would raise for), -1 on a memory error.
 */
typedef struct {
    int is_request;
    const char *method, *uri, *reason;
    Py_ssize_t method_len, uri_len, reason_len;
    int status;
} start_t;

static int
parse_head(const char *s, Py_ssize_t len, start_t *st, head_t *head)
{
    /* Lines. */
    Py_ssize_t nlines = 1;
    for (const char *q = s; (q = memchr(q, '\n', (size_t)(s + len - q))) != NULL; q++)
        nlines++;
    if (nlines > MAX_HEADER_LINES)
        return 0;
    const char *line = s, *end = s + len;
    const char *nl = memchr(line, '\n', (size_t)len);
    const char *le = nl ? nl : end;
    if (le - line > MAX_HEADER_LINE)
        return 0;
    /* Start line: rstrip("\r"). */
    Py_ssize_t l0 = le - line;
    while (l0 > 0 && line[l0 - 1] == '\r')
        l0--;
    memset(st, 0, sizeof *st);
    if (l0 >= 8 && memcmp(line, "SIP/2.0 ", 8) == 0) {
        const char *rest = line + 8;
        Py_ssize_t rlen = l0 - 8;
        const char *sp = memchr(rest, ' ', (size_t)rlen);
        Py_ssize_t clen = sp ? sp - rest : rlen;
        if (clen != 3)
            return 0;
        for (int i = 0; i < 3; i++)
            if (rest[i] < '0' || rest[i] > '9')
                return 0;
        int status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
        if (status < 100 || status > 699)
            return 0;
        st->status = status;
        const char *r = sp ? sp + 1 : rest + rlen;
        Py_ssize_t rl = sp ? rlen - clen - 1 : 0;
        strip_ws(&r, &rl);
        st->reason = r;
        st->reason_len = rl > 256 ? 256 : rl;
    }
    else {
        const char *sp1 = memchr(line, ' ', (size_t)l0);
        if (sp1 == NULL)
            return 0;
        const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(line + l0 - sp1 - 1));
        if (sp2 == NULL)
            return 0;
        if (line + l0 - (sp2 + 1) != 7 || memcmp(sp2 + 1, "SIP/2.0", 7) != 0)
            return 0; /* also rejects a third space: "SIP/2.0" has none */
        Py_ssize_t mlen = sp1 - line, ulen = sp2 - sp1 - 1;
        if (mlen < 1 || mlen > 32 || ulen < 1 || ulen > 1024)
            return 0;
        for (Py_ssize_t i = 0; i < mlen; i++) {
            char c = line[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
                return 0;
        }
        st->is_request = 1;
        st->method = line;
        st->method_len = mlen;
        st->uri = sp1 + 1;
        st->uri_len = ulen;
    }
    head->keybuf = malloc((size_t)len + 1);
    if (head->keybuf == NULL)
        return -1;
    char *kb = head->keybuf;
    /* Header lines. */
    while (nl != NULL) {
        line = nl + 1;
        nl = memchr(line, '\n', (size_t)(end - line));
        le = nl ? nl : end;
        if (le - line > MAX_HEADER_LINE)
            return 0;
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon == NULL)
            return 0;
        Py_ssize_t klen = colon - line;
        while (klen > 0 && IS_SPTAB(line[klen - 1]))
            klen--;
        if (klen == 0)
            return 0;
        for (Py_ssize_t i = 0; i < klen; i++) {
            if (IS_SPTAB(line[i]))
                return 0;
            kb[i] = LOWER(line[i]);
        }
        const char *key = kb;
        Py_ssize_t written = klen;
        if (klen == 1) {
            int c = in_table(compact_table, compact_count, kb, 1);
            if (c >= 0) {
                key = PyUnicode_DATA(compact_table[c].value);
                klen = PyUnicode_GET_LENGTH(compact_table[c].value);
            }
        }
        kb += written;
        const char *v = colon + 1;
        Py_ssize_t vlen = le - v;
        strip_ws(&v, &vlen);
        header *h = find(head, key, klen);
        if (h == NULL) {
            h = &head->h[head->count++];
            h->key = key;
            h->klen = klen;
            h->val = v;
            h->vlen = vlen;
            h->joined = NULL;
            h->jlen = h->jcap = 0;
            h->str = NULL;
        }
        else if (in_table(multi_table, multi_count, key, klen) >= 0) {
            if (join_value(h, v, vlen) < 0)
                return -1;
        }
    }
    return 1;
}

/* split_commas(value)[0]: up to the first comma outside quotes and angle brackets. */
static Py_ssize_t
first_comma_item(const char *p, Py_ssize_t n)
{
    int depth = 0, quoted = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '"')
            quoted = !quoted;
        else if (quoted)
            continue;
        else if (c == '<')
            depth++;
        else if (c == '>')
            depth = depth > 0 ? depth - 1 : 0;
        else if (c == ',' && depth == 0)
            return i;
    }
    return n;
}

/* sip_headers.uri_user on an already stripped uri. */
static PyObject *
uri_user(const char *u, Py_ssize_t n)
{
    static const char *sip_schemes[] = {"sips:", "sip:", "SIPS:", "SIP:", "Sips:", "Sip:"};
    for (int k = 0; k < 6; k++) {
        Py_ssize_t sl = (Py_ssize_t)strlen(sip_schemes[k]);
        if (n >= sl && memcmp(u, sip_schemes[k], (size_t)sl) == 0) {
            const char *r = u + sl;
            Py_ssize_t rl = n - sl, run = 0;
            while (run < rl && r[run] != '@' && r[run] != ';' && r[run] != ':')
                run++;
            if (run >= 1 && memchr(r + run, '@', (size_t)(rl - run)) != NULL)
                return astr(r, run);
            break; /* the alternatives cannot match where this one's prefix did */
        }
    }
    static const char *tel_schemes[] = {"tel:", "TEL:", "Tel:"};
    for (int k = 0; k < 3; k++) {
        if (n >= 4 && memcmp(u, tel_schemes[k], 4) == 0) {
            const char *r = u + 4;
            Py_ssize_t run = 0;
            while (run < n - 4 && r[run] != ';' && r[run] != '>')
                run++;
            if (run < 1)
                Py_RETURN_NONE;
            strip_ws(&r, &run);
            return astr_or_none(r, run);
        }
    }
    Py_RETURN_NONE;
}

/*
 * sip_headers.name_addr for the shapes of its fast pattern; out[0..3] = display, uri,
 * user, tag (new references). Returns 1 when done, 0 when the Python function must read
 * the value, -1 on error.
 */
static int
name_addr_fast(const char *p, Py_ssize_t n, PyObject **out)
{
    if (n == 0 || IS_SPTAB(p[0]))
        return 0;
    const char *disp;
    Py_ssize_t dlen, pos;
    if (p[0] == '"') {
        const char *q = memchr(p + 1, '"', (size_t)(n - 1));
        if (q == NULL || memchr(p + 1, '\\', (size_t)(q - p - 1)) != NULL)
            return 0;
        disp = p + 1;
        dlen = q - p - 1;
        pos = q - p + 1;
        while (pos < n && IS_SPTAB(p[pos]))
            pos++;
        if (pos >= n || p[pos] != '<')
            return 0;
    }
    else {
        const char *lt = memchr(p, '<', (size_t)n);
        if (lt == NULL || memchr(p, '"', (size_t)(lt - p)) != NULL)
            return 0;
        disp = p;
        dlen = lt - p;
        while (dlen > 0 && IS_SPTAB(disp[dlen - 1]))
            dlen--;
        pos = lt - p;
    }
    const char *uri = p + pos + 1;
    const char *gt = memchr(uri, '>', (size_t)(n - pos - 1));
    if (gt == NULL)
        return 0;
    Py_ssize_t ulen = gt - uri;
    strip_ws(&uri, &ulen);
    /* First ";" [ \t]* "tag=" (any case) followed by at least one of [^; \t,]. */
    const char *tag = NULL;
    Py_ssize_t tlen = 0;
    const char *end = p + n;
    for (const char *s = gt + 1; s < end; s++) {
        if (*s != ';')
            continue;
        const char *t = s + 1;
        while (t < end && IS_SPTAB(*t))
            t++;
        if (!ci_prefix(t, end - t, "tag="))
            continue;
        t += 4;
        Py_ssize_t run = 0;
        while (t + run < end && t[run] != ';' && !IS_SPTAB(t[run]) && t[run] != ',')
            run++;
        if (run > 0) {
            tag = t;
            tlen = run;
            break;
        }
    }
    out[0] = astr_or_none(disp, dlen);
    out[1] = astr_or_none(uri, ulen);
    out[2] = uri_user(uri, ulen);
    out[3] = tag ? astr(tag, tlen) : Py_NewRef(Py_None);
    if (!out[0] || !out[1] || !out[2] || !out[3]) {
        for (int i = 0; i < 4; i++)
            Py_CLEAR(out[i]);
        return -1;
    }
    return 1;
}

/* name_addr of p[:n], fast or by the Python function. 0 on success, -1 on error. */
static int
name_addr(const char *p, Py_ssize_t n, PyObject **out)
{
    int r = name_addr_fast(p, n, out);
    if (r != 0)
        return r > 0 ? 0 : -1;
    PyObject *arg = astr(p, n);
    if (arg == NULL)
        return -1;
    PyObject *t = PyObject_CallOneArg(py_name_addr, arg);
    Py_DECREF(arg);
    if (t == NULL)
        return -1;
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_TypeError, "name_addr returned something else than a 4-tuple");
        return -1;
    }
    for (int i = 0; i < 4; i++)
        out[i] = Py_NewRef(PyTuple_GET_ITEM(t, i));
    Py_DECREF(t);
    return 0;
}

/* BRANCH.findall(via)[:32] */
static PyObject *
branches(const char *p, Py_ssize_t n)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    const char *end = p + n;
    for (const char *s = p; s < end && PyList_GET_SIZE(list) < 32; s++) {
        if (*s != ';')
            continue;
        const char *t = s + 1;
        while (t < end && IS_SPTAB(*t))
            t++;
        if (!ci_prefix(t, end - t, "branch="))
            continue;
        t += 7;
        Py_ssize_t run = 0;
        while (t + run < end && t[run] != ';' && t[run] != ',' && !IS_SPTAB(t[run]) && t[run] != '>')
            run++;
        if (run == 0)
            continue;
        PyObject *b = astr(t, run);
        if (b == NULL || PyList_Append(list, b) < 0) {
            Py_XDECREF(b);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(b);
        s = t + run - 1;
    }
    return list;
}

/* EXPIRES.search(text): first ";" [ \t]* "expires=" (any case) [0-9]+; digits() of it. */
static PyObject *
contact_expires(const char *p, Py_ssize_t n)
{
    const char *end = p + n;
    for (const char *s = p; s < end; s++) {
        if (*s != ';')
            continue;
        const char *t = s + 1;
        while (t < end && IS_SPTAB(*t))
            t++;
        if (!ci_prefix(t, end - t, "expires="))
            continue;
        t += 8;
        Py_ssize_t run = 0;
        while (t + run < end && t[run] >= '0' && t[run] <= '9')
            run++;
        if (run > 0)
            return digits_obj(t, run);
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ SDP (sdp.summarize) */

/* str.split() of p[:n] into at most max words (spans); returns the number of words (all of them, counted). */
static Py_ssize_t
split_ws(const char *p, Py_ssize_t n, const char **w, Py_ssize_t *wl, Py_ssize_t max)
{
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n;) {
        while (i < n && IS_WS((unsigned char)p[i]))
            i++;
        if (i >= n)
            break;
        Py_ssize_t j = i;
        while (j < n && !IS_WS((unsigned char)p[j]))
            j++;
        if (count < max) {
            w[count] = p + i;
            wl[count] = j - i;
        }
        count++;
        i = j;
    }
    return count;
}

/* sdp._conn_addr: the third word of a c= value up to "/", at most 64 characters, or None. */
static PyObject *
conn_addr(const char *p, Py_ssize_t n)
{
    const char *w[3];
    Py_ssize_t wl[3];
    if (split_ws(p, n, w, wl, 3) < 3)
        Py_RETURN_NONE;
    const char *slash = memchr(w[2], '/', (size_t)wl[2]);
    Py_ssize_t len = slash ? slash - w[2] : wl[2];
    return astr_or_none(w[2], len > 64 ? 64 : len);
}

static int
is_direction(const char *p, Py_ssize_t n)
{
    return n == 8 && (memcmp(p, "sendrecv", 8) == 0 || memcmp(p, "sendonly", 8) == 0 ||
                      memcmp(p, "recvonly", 8) == 0 || memcmp(p, "inactive", 8) == 0);
}

/* An attribute before any m= line belongs to the session (*session), after one to that media
   description (cur). Steals value. -1 on error. */
static int
media_or_session(PyObject *cur, PyObject **session, const char *key, PyObject *value)
{
    if (cur == NULL) {
        Py_XSETREF(*session, value);
        return 0;
    }
    int r = PyDict_SetItemString(cur, key, value);
    Py_DECREF(value);
    return r;
}

#define MAX_MEDIA 32
#define MAX_FORMATS 64

/* sdp.summarize of ASCII text. New reference, NULL on error. */
static PyObject *
summarize(const char *text, Py_ssize_t len)
{
    PyObject *session_conn = Py_NewRef(Py_None), *session_dir = NULL, *origin = Py_NewRef(Py_None);
    PyObject *media = PyList_New(0), *maps = PyList_New(0), *result = NULL;
    PyObject *cur = NULL, *cur_map = NULL; /* borrowed from media / maps */
    if (media == NULL || maps == NULL)
        goto done;
    const char *end = text + len;
    for (const char *line = text; line <= end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        Py_ssize_t ll = le - line;
        const char *next = nl ? nl + 1 : end + 1;
        if (ll >= 2 && line[1] == '=') {
            const char *v = line + 2;
            Py_ssize_t vl = ll - 2;
            if (line[0] == 'a') {
                while (vl > 0 && v[vl - 1] == '\r')
                    vl--;
                const char *colon = memchr(v, ':', (size_t)vl);
                Py_ssize_t name_len = colon ? colon - v : vl;
                if (name_len == 6 && memcmp(v, "rtpmap", 6) == 0) {
                    const char *rest = colon ? colon + 1 : v + vl;
                    Py_ssize_t rl = colon ? vl - name_len - 1 : 0;
                    strip_ws(&rest, &rl);
                    const char *sp = memchr(rest, ' ', (size_t)rl);
                    if (cur != NULL && sp != NULL && sp + 1 < rest + rl) {
                        const char *enc = sp + 1;
                        Py_ssize_t el = rest + rl - enc;
                        strip_ws(&enc, &el);
                        PyObject *k = astr(rest, sp - rest);
                        PyObject *val = k ? astr(enc, el > 64 ? 64 : el) : NULL;
                        int r = val ? PyDict_SetItem(cur_map, k, val) : -1;
                        Py_XDECREF(k);
                        Py_XDECREF(val);
                        if (r < 0)
                            goto done;
                    }
                }
                else if (is_direction(v, name_len)) {
                    PyObject *dir = astr(v, name_len);
                    if (dir == NULL || media_or_session(cur, &session_dir, "direction", dir) < 0)
                        goto done;
                }
            }
            else if (line[0] == 'm') {
                const char *w[3 + MAX_FORMATS];
                Py_ssize_t wl[3 + MAX_FORMATS];
                Py_ssize_t nw = PyList_GET_SIZE(media) >= MAX_MEDIA ? 0 : split_ws(v, vl, w, wl, 3 + MAX_FORMATS);
                const char *slash = nw >= 2 ? memchr(w[1], '/', (size_t)wl[1]) : NULL;
                Py_ssize_t pl = nw >= 2 ? (slash ? slash - w[1] : wl[1]) : 0;
                long long port = nw >= 2 && pl <= 5 ? digits(w[1], pl) : -1;
                if (port < 0 || port > 65535) {
                    cur = NULL;
                }
                else {
                    Py_ssize_t nf = nw > 3 + MAX_FORMATS ? MAX_FORMATS : (nw > 3 ? nw - 3 : 0);
                    PyObject *formats = PyList_New(nf);
                    if (formats == NULL)
                        goto done;
                    for (Py_ssize_t i = 0; i < nf; i++) {
                        PyObject *f = astr(w[3 + i], wl[3 + i] > 32 ? 32 : wl[3 + i]);
                        if (f == NULL) {
                            Py_DECREF(formats);
                            goto done;
                        }
                        PyList_SET_ITEM(formats, i, f);
                    }
                    PyObject *m = Py_BuildValue("{s:N,s:L,s:N,s:N,s:N,s:O,s:O}", "media",
                                                astr(w[0], wl[0] > 32 ? 32 : wl[0]), "port", port, "proto",
                                                nw > 2 ? astr(w[2], wl[2] > 64 ? 64 : wl[2]) : astr("", 0),
                                                "formats", formats, "codecs", PyList_New(0), "connection", Py_None,
                                                "direction", Py_None);
                    PyObject *map = m ? PyDict_New() : NULL;
                    int r = map ? PyList_Append(media, m) : -1;
                    if (r == 0)
                        r = PyList_Append(maps, map);
                    Py_XDECREF(m);
                    Py_XDECREF(map);
                    if (r < 0)
                        goto done;
                    cur = m;
                    cur_map = map;
                }
            }
            else if (line[0] == 'c') {
                PyObject *addr = conn_addr(v, vl);
                if (addr == NULL || media_or_session(cur, &session_conn, "connection", addr) < 0)
                    goto done;
            }
            else if (line[0] == 'o') {
                while (vl > 0 && v[vl - 1] == '\r')
                    vl--;
                PyObject *o = astr(v, vl > 256 ? 256 : vl);
                if (o == NULL)
                    goto done;
                Py_SETREF(origin, o);
            }
        }
        line = next;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(media); i++) {
        PyObject *m = PyList_GET_ITEM(media, i), *map = PyList_GET_ITEM(maps, i);
        PyObject *formats = PyDict_GetItemString(m, "formats"), *codecs = PyDict_GetItemString(m, "codecs");
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(formats); j++) {
            PyObject *fmt = PyList_GET_ITEM(formats, j);
            PyObject *codec = PyDict_GetItemWithError(map, fmt);
            if (codec == NULL && !PyErr_Occurred())
                codec = PyDict_GetItemWithError(static_codecs, fmt);
            if (codec == NULL && PyErr_Occurred())
                goto done;
            if (codec != NULL && PyList_Append(codecs, codec) < 0)
                goto done;
        }
        if (PyDict_GetItemString(m, "connection") == Py_None &&
            PyDict_SetItemString(m, "connection", session_conn) < 0)
            goto done;
        if (PyDict_GetItemString(m, "direction") == Py_None &&
            PyDict_SetItemString(m, "direction", session_dir ? session_dir : Py_None) < 0)
            goto done;
    }
    result = Py_BuildValue("{s:O,s:O,s:O}", "connection", session_conn, "origin", origin, "media", media);
done:
    Py_XDECREF(session_conn);
    Py_XDECREF(session_dir);
    Py_XDECREF(origin);
    Py_XDECREF(media);
    Py_XDECREF(maps);
    return result;
}

/* out[key] = value (stolen); -1 when value is NULL (an error is set). */
static int
set_steal(PyObject **out, int key, PyObject *value)
{
    if (value == NULL)
        return -1;
    Py_XSETREF(out[key], value);
    return 0;
}

/*
 * parse_fields_pure's values, by key index, into out[K_COUNT] (new references; the caller
 * releases them whatever the outcome). 0: done; -1 with *fallback set: the Python path
 * must read the message; -1 without: an error is set.
 */
static int
sip_values(const char *d, Py_ssize_t n, Py_ssize_t head_end, PyObject *correlation_headers, PyObject **out,
           int *fallback)
{
    start_t st;
    head_t head_on_stack; /* about 20 KiB: one per call, no allocation */
    head_t *head = &head_on_stack;
    head->count = 0;
    head->keybuf = NULL;
    int result = -1;
    int r = parse_head(d, head_end, &st, head);
    if (r <= 0) {
        if (r == 0)
            *fallback = 1;
        goto done;
    }
    header *h_call_id = FIND(head, "call-id");
    if (h_call_id == NULL)
        goto fall;
    const char *cid;
    Py_ssize_t cid_len;
    hvalue(h_call_id, &cid, &cid_len);
    if (cid_len == 0 || cid_len > 1024)
        goto fall;
    header *h_cseq = FIND(head, "cseq");
    if (h_cseq == NULL)
        goto fall;
    /* cseq_value.split(): exactly two words, the first digits() < 2^32. */
    const char *cv;
    Py_ssize_t cvl;
    hvalue(h_cseq, &cv, &cvl);
    const char *w[3];
    Py_ssize_t wl[3];
    int nw = 0;
    for (Py_ssize_t i = 0; i < cvl;) {
        while (i < cvl && IS_WS((unsigned char)cv[i]))
            i++;
        if (i >= cvl)
            break;
        Py_ssize_t j = i;
        while (j < cvl && !IS_WS((unsigned char)cv[j]))
            j++;
        if (nw == 3)
            goto fall;
        w[nw] = cv + i;
        wl[nw] = j - i;
        nw++;
        i = j;
    }
    if (nw != 2)
        goto fall;
    long long cseq = digits(w[0], wl[0]);
    if (cseq < 0 || cseq >= (1LL << 32))
        goto fall;
    Py_ssize_t body_start = head_end + 4, body_len = n - body_start;
    header *h = FIND(head, "content-length");
    if (h != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        long long clen = digits(p, pl);
        if (clen < 0 || clen >= (1LL << 32) || clen > body_len)
            goto fall; /* errors (no bare LF on this path) */
        body_len = (Py_ssize_t)clen;
    }

    PyObject *na[4];
#define SET(k, expr)                        \
    if (set_steal(out, (k), (expr)) < 0)   \
        goto done;
    SET(K_IS_REQUEST, Py_NewRef(st.is_request ? Py_True : Py_False));
    if (st.is_request) {
        SET(K_METHOD, astr(st.method, st.method_len));
        SET(K_REQUEST_URI, astr(st.uri, st.uri_len));
        SET(K_STATUS, Py_NewRef(Py_None));
        SET(K_REASON, Py_NewRef(Py_None));
    }
    else {
        SET(K_METHOD, astr(w[1], wl[1] > 32 ? 32 : wl[1]));
        SET(K_REQUEST_URI, Py_NewRef(Py_None));
        SET(K_STATUS, PyLong_FromLong(st.status));
        SET(K_REASON, astr(st.reason, st.reason_len));
    }
    SET(K_CALL_ID, hstr(h_call_id));
    SET(K_CSEQ, PyLong_FromLongLong(cseq));
    /* From, To: (display, uri, user, tag) -> user, display, uri, tag */
    static const int from_keys[4] = {K_FROM_DISPLAY, K_FROM_URI, K_FROM_USER, K_FROM_TAG};
    static const int to_keys[4] = {K_TO_DISPLAY, K_TO_URI, K_TO_USER, K_TO_TAG};
    static const int order[4] = {2, 0, 1, 3};
    for (int which = 0; which < 2; which++) {
        const int *fk = which == 0 ? from_keys : to_keys;
        h = which == 0 ? FIND(head, "from") : FIND(head, "to");
        if (h == NULL) {
            for (int i = 0; i < 4; i++)
                na[i] = Py_NewRef(Py_None);
        }
        else {
            const char *p;
            Py_ssize_t pl;
            hvalue(h, &p, &pl);
            if (name_addr(p, pl, na) < 0)
                goto done;
        }
        int failed = 0;
        for (int i = 0; i < 4; i++) {
            int k = order[i];
            if (!failed && set_steal(out, fk[k], na[k]) < 0)
                failed = 1;
            else if (failed)
                Py_DECREF(na[k]);
        }
        if (failed)
            goto done;
    }
    h = FIND(head, "via");
    PyObject *br;
    if (h != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        br = branches(p, pl);
    }
    else {
        br = PyList_New(0);
    }
    if (br == NULL)
        goto done;
    if (PyList_GET_SIZE(br) > 0)
        r = set_steal(out, K_VIA_BRANCH, Py_NewRef(PyList_GET_ITEM(br, 0)));
    else
        r = set_steal(out, K_VIA_BRANCH, Py_NewRef(Py_None));
    if (r < 0) {
        Py_DECREF(br);
        goto done;
    }
    SET(K_VIA_BRANCHES, br);
    header *h_contact = FIND(head, "contact");
    SET(K_CONTACT, h_contact ? hstr(h_contact) : Py_NewRef(Py_None));
    h = FIND(head, "user-agent");
    SET(K_USER_AGENT, h ? hstr(h) : Py_NewRef(Py_None));
    h = FIND(head, "server");
    SET(K_SERVER, h ? hstr(h) : Py_NewRef(Py_None));
    h = FIND(head, "p-asserted-identity");
    if (h != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        if (name_addr(p, first_comma_item(p, pl), na) < 0)
            goto done;
        Py_DECREF(na[0]);
        Py_DECREF(na[3]);
        if (set_steal(out, K_PAI, na[1]) < 0) {
            Py_DECREF(na[2]);
            goto done;
        }
        SET(K_PAI_USER, na[2]);
    }
    else {
        SET(K_PAI, Py_NewRef(Py_None));
        SET(K_PAI_USER, Py_NewRef(Py_None));
    }
    h = FIND(head, "session-id");
    if (h != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        const char *semi = memchr(p, ';', (size_t)pl);
        if (semi)
            pl = semi - p;
        strip_ws(&p, &pl);
        SET(K_SESSION_ID, astr_or_none(p, pl > 256 ? 256 : pl));
    }
    else {
        SET(K_SESSION_ID, Py_NewRef(Py_None));
    }
    h = FIND(head, "expires");
    if (h != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        SET(K_EXPIRES, digits_obj(p, pl));
    }
    else if (h_contact != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h_contact, &p, &pl);
        if (memchr(p, ';', (size_t)pl) != NULL) {
            SET(K_EXPIRES, contact_expires(p, first_comma_item(p, pl)));
        }
        else {
            SET(K_EXPIRES, Py_NewRef(Py_None));
        }
    }
    else {
        SET(K_EXPIRES, Py_NewRef(Py_None));
    }
    h = FIND(head, "reason");
    if (h != NULL) {
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        if (pl > 512) {
            SET(K_REASON_HEADER, astr(p, 512));
        }
        else {
            SET(K_REASON_HEADER, hstr(h));
        }
    }
    else {
        SET(K_REASON_HEADER, Py_NewRef(Py_None));
    }
    /* Correlation (before content type: the values are read here, set in order below). */
    PyObject *corr = PyDict_New();
    if (corr == NULL)
        goto done;
    Py_ssize_t nc = PySequence_Fast_GET_SIZE(correlation_headers);
    PyObject **items = PySequence_Fast_ITEMS(correlation_headers);
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *wanted = items[i];
        Py_ssize_t wl_;
        const char *wp = PyUnicode_AsUTF8AndSize(wanted, &wl_);
        char lower[256];
        if (wp == NULL || wl_ > 255) { /* checked by the caller */
            Py_DECREF(corr);
            goto done;
        }
        for (Py_ssize_t j = 0; j < wl_; j++)
            lower[j] = LOWER(wp[j]);
        header *c = find(head, wp, wl_);
        if (c != NULL) {
            const char *p;
            Py_ssize_t pl;
            hvalue(c, &p, &pl);
            if (pl == 0) /* "" or found.get(wanted.lower()) */
                c = find(head, lower, wl_);
        }
        else {
            c = find(head, lower, wl_);
        }
        if (c == NULL)
            continue;
        PyObject *lk = astr(lower, wl_);
        PyObject *val = lk ? hstr(c) : NULL;
        if (lk == NULL || val == NULL || PyDict_SetItem(corr, lk, val) < 0) {
            Py_XDECREF(lk);
            Py_XDECREF(val);
            Py_DECREF(corr);
            goto done;
        }
        Py_DECREF(lk);
        Py_DECREF(val);
    }
    h = FIND(head, "content-type");
    PyObject *sdp = Py_NewRef(Py_None), *vq = Py_NewRef(Py_None);
    if (h != NULL) {
        if (set_steal(out, K_CONTENT_TYPE, hstr(h)) < 0) {
            Py_DECREF(corr);
            Py_DECREF(sdp);
            Py_DECREF(vq);
            goto done;
        }
        const char *p;
        Py_ssize_t pl;
        hvalue(h, &p, &pl);
        const char *semi = memchr(p, ';', (size_t)pl);
        if (semi)
            pl = semi - p;
        strip_ws(&p, &pl);
        PyObject *res = NULL;
        int is_sdp = 0, is_vq = 0;
        if (body_len > 0 && pl == 15 && ci_prefix(p, pl, "application/sdp")) {
            is_sdp = 1;
            res = summarize(d + body_start, body_len);
        }
        else if (body_len > 0 && pl == 21 && ci_prefix(p, pl, "application/vq-rtcpxr")) {
            is_vq = 1;
            PyObject *text = astr(d + body_start, body_len);
            res = text ? PyObject_CallOneArg(py_vq_report, text) : NULL;
            Py_XDECREF(text);
        }
        if ((is_sdp || is_vq) && res == NULL) {
            Py_DECREF(corr);
            Py_DECREF(sdp);
            Py_DECREF(vq);
            goto done;
        }
        if (is_sdp)
            Py_SETREF(sdp, res);
        else if (is_vq)
            Py_SETREF(vq, res);
    }
    else if (set_steal(out, K_CONTENT_TYPE, Py_NewRef(Py_None)) < 0) {
        Py_DECREF(corr);
        Py_DECREF(sdp);
        Py_DECREF(vq);
        goto done;
    }
    SET(K_CORRELATION, corr);
    if (set_steal(out, K_SDP, sdp) < 0) {
        Py_DECREF(vq);
        goto done;
    }
    SET(K_VQ_REPORT, vq);
    PyObject *kept = PyDict_New();
    if (kept == NULL)
        goto done;
    for (int i = 0; i < head->count; i++) {
        int k = in_table(kept_table, kept_count, head->h[i].key, head->h[i].klen);
        if (k < 0)
            continue;
        PyObject *val = hstr(&head->h[i]);
        if (val == NULL || PyDict_SetItem(kept, kept_table[k].value, val) < 0) {
            Py_XDECREF(val);
            Py_DECREF(kept);
            goto done;
        }
        Py_DECREF(val);
    }
    SET(K_HEADERS, kept);
    /* raw: the whole message as str (ASCII: checked by the caller). */
    SET(K_RAW, astr(d, n));
#undef SET
    result = 0;
    goto done;
fall:
    *fallback = 1;
done:
    head_free(head);
    return result;
}

static int
all_ascii(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (x & 0x8080808080808080ULL)
            return 0;
    }
    for (; i < n; i++)
        if (p[i] & 0x80)
            return 0;
    return 1;
}

/*
 * The checks parse_fields makes before reading a message: 1 with *d, *n, *head_end set
 * when this module reads it, 0 when the Python path must, -1 on error.
 */
static int
sip_prepare(PyObject *data, PyObject *corr, PyObject *maxobj, const char **dp, Py_ssize_t *np,
            Py_ssize_t *head_end)
{
    Py_ssize_t max_bytes = 65535;
    if (!PyBytes_CheckExact(data))
        return 0;
    if (maxobj != NULL) {
        if (!PyLong_CheckExact(maxobj))
            return 0;
        max_bytes = PyLong_AsSsize_t(maxobj);
        if (max_bytes == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
    }
    if (!PyTuple_CheckExact(corr) && !PyList_CheckExact(corr))
        return 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(corr); i++) {
        PyObject *w = PySequence_Fast_ITEMS(corr)[i];
        if (!PyUnicode_CheckExact(w) || !PyUnicode_IS_ASCII(w) || PyUnicode_GET_LENGTH(w) > 255)
            return 0;
    }
    const char *d = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (n == 0 || n > max_bytes || !all_ascii((const unsigned char *)d, n))
        return 0;
    /* The blank line: the first "\r\n\r\n", not preceded by "\r" or "\n" (see parse_fields_pure). */
    const char *crlf = NULL;
    for (const char *q = d; (q = memchr(q, '\r', (size_t)(d + n - q))) != NULL; q++) {
        if (d + n - q >= 4 && q[1] == '\n' && q[2] == '\r' && q[3] == '\n') {
            crlf = q;
            break;
        }
    }
    if (crlf == NULL || crlf == d || crlf[-1] == '\r' || crlf[-1] == '\n')
        return 0;
    *dp = d;
    *np = n;
    *head_end = crlf - d;
    return 1;
}

static void
release(PyObject **vals)
{
    for (int i = 0; i < K_COUNT; i++)
        Py_CLEAR(vals[i]);
}

static PyObject *
parse_fields(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (!configured(parse_fallback))
        return NULL;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *corr = default_correlation, *maxobj = NULL;
    if (nargs != 1)
        goto fallback;
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_Compare(name, kw_correlation_headers) == 0)
                corr = args[nargs + i];
            else if (PyUnicode_Compare(name, kw_max_message_bytes) == 0)
                maxobj = args[nargs + i];
            else
                goto fallback; /* Python raises the TypeError */
        }
    }
    const char *d;
    Py_ssize_t n, head_end;
    int ok = sip_prepare(args[0], corr, maxobj, &d, &n, &head_end);
    if (ok < 0)
        return NULL;
    if (ok == 0)
        goto fallback;
    PyObject *vals[K_COUNT] = {NULL};
    int fall = 0;
    if (sip_values(d, n, head_end, corr, vals, &fall) < 0) {
        release(vals);
        if (fall)
            goto fallback;
        return NULL;
    }
    PyObject *out = _PyDict_NewPresized(K_COUNT);
    for (int i = 0; out != NULL && i < K_COUNT; i++)
        if (PyDict_SetItem(out, keys[i], vals[i]) < 0)
            Py_CLEAR(out);
    release(vals);
    return out;
fallback:
    return call_fallback(parse_fallback, args, nargsf, kwnames);
}

/* ------------------------------------------------------------------ JSON (as orjson writes it) */

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} out_t;

static int
grow(out_t *o, Py_ssize_t more)
{
    if (o->len + more <= o->cap)
        return 0;
    Py_ssize_t cap = (o->len + more) * 2 + 256;
    char *b = PyMem_Realloc(o->buf, (size_t)cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static int
put(out_t *o, const char *p, Py_ssize_t n)
{
    if (grow(o, n) < 0)
        return -1;
    memcpy(o->buf + o->len, p, (size_t)n);
    o->len += n;
    return 0;
}

#define PUT_LIT(o, lit) put((o), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static unsigned char needs_escape[256]; /* filled at import: controls, '"' and '\\' */

/* A JSON string of UTF-8 text: '"' and '\\' escaped, \b \t \n \f \r, other controls as \u00xx. */
static int
put_text(out_t *o, const char *p, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (grow(o, n * 6 + 2) < 0)
        return -1;
    char *w = o->buf + o->len;
    *w++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!needs_escape[c]) {
            Py_ssize_t j = i + 1; /* the run that needs no escape, in one copy */
            while (j < n && !needs_escape[(unsigned char)p[j]])
                j++;
            memcpy(w, p + i, (size_t)(j - i));
            w += j - i;
            i = j - 1;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"':
            *w++ = '"';
            break;
        case '\\':
            *w++ = '\\';
            break;
        case '\b':
            *w++ = 'b';
            break;
        case '\t':
            *w++ = 't';
            break;
        case '\n':
            *w++ = 'n';
            break;
        case '\f':
            *w++ = 'f';
            break;
        case '\r':
            *w++ = 'r';
            break;
        default:
            *w++ = 'u';
            *w++ = '0';
            *w++ = '0';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    *w++ = '"';
    o->len = w - o->buf;
    return 0;
}

/* 1 written, 0 not a type written here (the caller falls back to orjson), -1 error. */
static int
put_obj(out_t *o, PyObject *v, int depth)
{
    if (depth > 64)
        return 0;
    if (v == Py_None)
        return PUT_LIT(o, "null") < 0 ? -1 : 1;
    if (v == Py_True)
        return PUT_LIT(o, "true") < 0 ? -1 : 1;
    if (v == Py_False)
        return PUT_LIT(o, "false") < 0 ? -1 : 1;
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(v, &n);
        if (p == NULL) { /* surrogates: orjson refuses them, and so does the Python path */
            PyErr_Clear();
            return 0;
        }
        return put_text(o, p, n) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        char num[24];
        int k = sizeof num;
        unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
        do {
            num[--k] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0)
            num[--k] = '-';
        return put(o, num + k, (Py_ssize_t)sizeof num - k) < 0 ? -1 : 1;
    }
    if (PyList_CheckExact(v)) {
        if (PUT_LIT(o, "[") < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            if (i && PUT_LIT(o, ",") < 0)
                return -1;
            int r = put_obj(o, PyList_GET_ITEM(v, i), depth + 1);
            if (r <= 0)
                return r;
        }
        return PUT_LIT(o, "]") < 0 ? -1 : 1;
    }
    if (PyDict_CheckExact(v)) {
        if (PUT_LIT(o, "{") < 0)
            return -1;
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *value;
        while (PyDict_Next(v, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key))
                return 0;
            if (i++ && PUT_LIT(o, ",") < 0)
                return -1;
            int r = put_obj(o, key, depth + 1);
            if (r <= 0)
                return r;
            if (PUT_LIT(o, ":") < 0)
                return -1;
            r = put_obj(o, value, depth + 1);
            if (r <= 0)
                return r;
        }
        return PUT_LIT(o, "}") < 0 ? -1 : 1;
    }
    return 0;
}

static int
put_key(out_t *o, const char *key)
{
    return put(o, key, (Py_ssize_t)strlen(key));
}

/* {"ip":<ip>,"port":<port>} */
static int
put_addr(out_t *o, PyObject *ip, PyObject *port)
{
    int r;
    if (PUT_LIT(o, "{\"ip\":") < 0)
        return -1;
    if ((r = put_obj(o, ip, 1)) <= 0)
        return r;
    if (PUT_LIT(o, ",\"port\":") < 0)
        return -1;
    if ((r = put_obj(o, port, 1)) <= 0)
        return r;
    return PUT_LIT(o, "}") < 0 ? -1 : 1;
}

/*
 * events.ts_text(ts_us) as JSON: the seconds' text from events._SECONDS (the cache the
 * Python function fills), the microseconds in six digits. On a cache miss, or a value
 * outside 0 .. 2^62, the Python function itself gives the text (or raises its DecodeError).
 */
static int
put_ts(out_t *o, PyObject *ts_us)
{
    long long us = PyLong_CheckExact(ts_us) ? PyLong_AsLongLong(ts_us) : -1;
    if (us == -1 && PyErr_Occurred())
        PyErr_Clear();
    if (us >= 0 && us < (1LL << 62)) {
        PyObject *sec = PyLong_FromLongLong(us / 1000000);
        if (sec == NULL)
            return -1;
        PyObject *text = PyDict_GetItemWithError(seconds_cache, sec); /* borrowed */
        Py_DECREF(sec);
        if (text == NULL && PyErr_Occurred())
            return -1;
        if (text != NULL && PyUnicode_CheckExact(text) && PyUnicode_IS_ASCII(text)) {
            char usec[8];
            long long u = us % 1000000;
            for (int i = 5; i >= 0; i--) {
                usec[i] = (char)('0' + u % 10);
                u /= 10;
            }
            usec[6] = 'Z';
            Py_ssize_t n = PyUnicode_GET_LENGTH(text);
            if (PUT_LIT(o, "\"") < 0 || put(o, PyUnicode_DATA(text), n) < 0 || put(o, usec, 7) < 0 ||
                PUT_LIT(o, "\"") < 0)
                return -1;
            return 1;
        }
    }
    PyObject *text = PyObject_CallOneArg(py_ts_text, ts_us);
    if (text == NULL)
        return -1;
    int r = put_obj(o, text, 1);
    Py_DECREF(text);
    return r;
}

/*
 * sip_envelope(payload, correlation_headers, max_message_bytes, v, event_id, node, role, ts_us,
 *              received_us, src_ip, src_port, dst_ip, dst_port, transport, capture_id,
 *              capture_name, correlation_id)
 *   -> (call_id, envelope bytes) or None
 *
 * What events.envelope_from_hep_pure returns for a SIP packet, given what it computes before
 * the body; None when the Python path must read the message (or encode a value this writer
 * does not). Errors: those of events.ts_text (after the message parsed, as in the pure path).
 */
static PyObject *
sip_envelope(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured(parse_fallback) || !configured(py_ts_text))
        return NULL;
    if (nargs != 17) {
        PyErr_SetString(PyExc_TypeError, "sip_envelope takes 17 arguments");
        return NULL;
    }
    const char *d;
    Py_ssize_t n, head_end;
    int ok = sip_prepare(args[0], args[1], args[2], &d, &n, &head_end);
    if (ok <= 0) {
        if (ok < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *vals[K_COUNT] = {NULL};
    int fall = 0;
    if (sip_values(d, n, head_end, args[1], vals, &fall) < 0) {
        release(vals);
        if (fall)
            Py_RETURN_NONE;
        return NULL;
    }
    out_t o = {NULL, 0, 0};
    PyObject *result = NULL;
    int r = 0;
    if (grow(&o, 2 * n + 1024) < 0)
        goto done;
    static const char *head_keys[4] = {"{\"v\":", ",\"kind\":\"sip\",\"id\":", ",\"node\":", ",\"role\":"};
    for (int i = 0; i < 4; i++) {
        if (put_key(&o, head_keys[i]) < 0)
            goto done;
        if ((r = put_obj(&o, args[3 + i], 1)) <= 0)
            goto done;
    }
    if (PUT_LIT(&o, ",\"ts\":") < 0)
        goto done;
    if ((r = put_ts(&o, args[7])) <= 0)
        goto done;
    if (PUT_LIT(&o, ",\"received\":") < 0)
        goto done;
    if ((r = put_ts(&o, args[8])) <= 0)
        goto done;
    if (PUT_LIT(&o, ",\"key\":") < 0)
        goto done;
    if ((r = put_obj(&o, vals[K_CALL_ID], 1)) <= 0)
        goto done;
    if (PUT_LIT(&o, ",\"body\":{\"src\":") < 0)
        goto done;
    if ((r = put_addr(&o, args[9], args[10])) <= 0)
        goto done;
    if (PUT_LIT(&o, ",\"dst\":") < 0)
        goto done;
    if ((r = put_addr(&o, args[11], args[12])) <= 0)
        goto done;
    static const char *transport_keys[4] = {",\"transport\":", ",\"capture_id\":", ",\"capture_name\":",
                                            ",\"correlation_id\":"};
    for (int i = 0; i < 4; i++) {
        if (put_key(&o, transport_keys[i]) < 0)
            goto done;
        if ((r = put_obj(&o, args[13 + i], 1)) <= 0)
            goto done;
    }
    for (int i = 0; i < K_COUNT; i++) {
        if (PUT_LIT(&o, ",\"") < 0 || put_key(&o, key_names[i]) < 0 || PUT_LIT(&o, "\":") < 0)
            goto done;
        if ((r = put_obj(&o, vals[i], 1)) <= 0)
            goto done;
    }
    if (PUT_LIT(&o, "}}") < 0)
        goto done;
    PyObject *bytes = PyBytes_FromStringAndSize(o.buf, o.len);
    if (bytes != NULL) {
        result = PyTuple_Pack(2, vals[K_CALL_ID], bytes);
        Py_DECREF(bytes);
    }
done:
    PyMem_Free(o.buf);
    release(vals);
    if (result == NULL && r == 0 && !PyErr_Occurred())
        Py_RETURN_NONE; /* a value put_obj does not write: the Python path encodes it */
    return result;
}

/*
 * envelope_head(v, kind, event_id, node, role, ts_us, received_us, key) -> bytes or None
 *
 * The envelope's JSON up to its "key" (no closing brace): the caller appends ',"body":...}'.
 * None for a value this writer does not encode; ts_text's errors as raised.
 */
static PyObject *
envelope_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured(py_ts_text))
        return NULL;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "envelope_head takes 8 arguments");
        return NULL;
    }
    static const char *head_keys[5] = {"{\"v\":", ",\"kind\":", ",\"id\":", ",\"node\":", ",\"role\":"};
    out_t o = {NULL, 0, 0};
    PyObject *result = NULL;
    int r = 0;
    for (int i = 0; i < 5; i++) {
        if (put_key(&o, head_keys[i]) < 0)
            goto done;
        if ((r = put_obj(&o, args[i], 1)) <= 0)
            goto done;
    }
    if (PUT_LIT(&o, ",\"ts\":") < 0)
        goto done;
    if ((r = put_ts(&o, args[5])) <= 0)
        goto done;
    if (PUT_LIT(&o, ",\"received\":") < 0)
        goto done;
    if ((r = put_ts(&o, args[6])) <= 0)
        goto done;
    if (PUT_LIT(&o, ",\"key\":") < 0)
        goto done;
    if ((r = put_obj(&o, args[7], 1)) <= 0)
        goto done;
    result = PyBytes_FromStringAndSize(o.buf, o.len);
done:
    PyMem_Free(o.buf);
    if (result == NULL && r == 0 && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}

static PyObject *
configure_envelope(PyObject *self, PyObject *args)
{
    PyObject *ts_text, *cache;
    if (!PyArg_ParseTuple(args, "OO!:configure_envelope", &ts_text, &PyDict_Type, &cache))
        return NULL;
    Py_INCREF(ts_text);
    Py_XSETREF(py_ts_text, ts_text);
    Py_INCREF(cache);
    Py_XSETREF(seconds_cache, cache);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ sip_messages rows */

/*
 * sip_row(env) == schemas.tables._wire_sip_row(env)[1] for a msgspec-read SIP envelope
 * (schemas.wire.WireSipEnvelope) without a VQ report whose timestamps are in the encoder's
 * form (YYYY-MM-DDTHH:MM:SS.ffffffZ); None for anything else, which the Python function
 * then reads. Fields are read from the structs' slots (offsets taken from their member
 * descriptors at configure_sip_row()), the body column is the configured msgspec encoder's
 * text of the body cut before its last field, "raw" (as the Python function does).
 * tests/test_wire.py compares the two.
 */

enum { E_ID, E_NODE, E_ROLE, E_TS, E_RECEIVED, E_KEY, E_BODY, E_COUNT };
static const char *env_fields[E_COUNT] = {"id", "node", "role", "ts_text", "received_text", "key", "body"};
enum {
    B_CALL_ID, B_IS_REQUEST, B_METHOD, B_STATUS, B_REASON, B_CSEQ, B_FROM_USER, B_TO_USER, B_FROM_TAG,
    B_TO_TAG, B_SRC, B_DST, B_TRANSPORT, B_CORRELATION_ID, B_CAPTURE_ID, B_USER_AGENT, B_RAW, B_VQ_REPORT,
    B_COUNT
};
static const char *body_fields[B_COUNT] = {
    "call_id", "is_request", "method", "status", "reason", "cseq", "from_user", "to_user", "from_tag",
    "to_tag", "src", "dst", "transport", "correlation_id", "capture_id", "user_agent", "raw", "vq_report",
};
enum { P_IP, P_PORT, P_COUNT };
static const char *endpoint_fields[P_COUNT] = {"ip", "port"};

static PyTypeObject *row_env_type, *row_body_type, *row_endpoint_type;
static Py_ssize_t env_offsets[E_COUNT], body_offsets[B_COUNT], endpoint_offsets[P_COUNT];
static PyObject *row_encode;      /* msgspec.json.Encoder().encode */
static PyObject *row_empty, *row_udp, *row_zero;

static int
slot_offsets(PyTypeObject *type, const char **names, int count, Py_ssize_t *offsets)
{
    for (int i = 0; i < count; i++) {
        PyObject *d = PyObject_GetAttrString((PyObject *)type, names[i]);
        if (d == NULL)
            return -1;
        int ok = Py_IS_TYPE(d, &PyMemberDescr_Type)
                 && (((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX
                     || ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT);
        if (ok)
            offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, names[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *
configure_sip_row(PyObject *self, PyObject *args)
{
    PyTypeObject *env, *body, *endpoint;
    PyObject *encode;
    if (!PyArg_ParseTuple(args, "O!O!O!O:configure_sip_row", &PyType_Type, &env, &PyType_Type, &body,
                          &PyType_Type, &endpoint, &encode))
        return NULL;
    if (slot_offsets(env, env_fields, E_COUNT, env_offsets) < 0
        || slot_offsets(body, body_fields, B_COUNT, body_offsets) < 0
        || slot_offsets(endpoint, endpoint_fields, P_COUNT, endpoint_offsets) < 0)
        return NULL;
    if (row_empty == NULL) {
        row_empty = PyUnicode_InternFromString("");
        row_udp = PyUnicode_InternFromString("udp");
        row_zero = PyLong_FromLong(0);
        if (row_empty == NULL || row_udp == NULL || row_zero == NULL)
            return NULL;
    }
    Py_INCREF(env);
    Py_XSETREF(row_env_type, env);
    Py_INCREF(body);
    Py_XSETREF(row_body_type, body);
    Py_INCREF(endpoint);
    Py_XSETREF(row_endpoint_type, endpoint);
    Py_INCREF(encode);
    Py_XSETREF(row_encode, encode);
    Py_RETURN_NONE;
}

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (Howard Hinnant's days_from_civil). */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Microseconds since the epoch of "YYYY-MM-DDTHH:MM:SS.ffffffZ" (a valid date and time); 0 for any other text. */
static int
text_micros(PyObject *text, long long *out)
{
    static const unsigned char digit_at[27] = {1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0,
                                               1, 1, 1, 1, 1, 1, 0};
    static const unsigned char month_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (text == NULL || !PyUnicode_CheckExact(text) || PyUnicode_GET_LENGTH(text) != 27
        || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
        return 0;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(text);
    for (int i = 0; i < 27; i++)
        if (digit_at[i] ? (p[i] < '0' || p[i] > '9') : 0)
            return 0;
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':' || p[19] != '.' || p[26] != 'Z')
        return 0;
#define N2(i) ((p[i] - '0') * 10 + (p[(i) + 1] - '0'))
    long long year = N2(0) * 100 + N2(2);
    unsigned month = N2(5), day = N2(8), hour = N2(11), minute = N2(14), second = N2(17);
    long long frac = (long long)N2(20) * 10000 + N2(22) * 100 + N2(24);
#undef N2
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > month_days[month] || hour > 23 || minute > 59
        || second > 59)
        return 0;
    if (month == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        return 0;
    long long secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    *out = secs * 1000000 + frac;
    return 1;
}

/* A new reference to value, or to fallback when value is None or false (Python's "value or fallback"). */
static PyObject *
or_else(PyObject *value, PyObject *fallback)
{
    int truth = value == Py_None ? 0 : PyObject_IsTrue(value);
    if (truth < 0)
        return NULL;
    PyObject *out = truth ? value : fallback;
    Py_INCREF(out);
    return out;
}

/* The body column: the encoder's text of body, cut at its last ',"raw":', closed with '}'. */
static PyObject *
body_column(PyObject *body)
{
    static const char raw_key[] = ",\"raw\":";
    const Py_ssize_t key_len = (Py_ssize_t)sizeof(raw_key) - 1;
    PyObject *encoded = PyObject_CallOneArg(row_encode, body);
    if (encoded == NULL)
        return NULL;
    if (!PyBytes_CheckExact(encoded)) {
        Py_DECREF(encoded);
        Py_RETURN_NONE;
    }
    const char *s = PyBytes_AS_STRING(encoded);
    Py_ssize_t at = PyBytes_GET_SIZE(encoded) - key_len;
    while (at >= 0 && memcmp(s + at, raw_key, (size_t)key_len) != 0)
        at--;
    if (at < 0) {
        Py_DECREF(encoded);
        Py_RETURN_NONE;
    }
    char small[4096];
    char *buf = at + 1 <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc((size_t)at + 1);
    if (buf == NULL) {
        Py_DECREF(encoded);
        return PyErr_NoMemory();
    }
    memcpy(buf, s, (size_t)at);
    buf[at] = '}';
    PyObject *out = PyUnicode_DecodeUTF8(buf, at + 1, NULL);
    if (buf != small)
        PyMem_Free(buf);
    Py_DECREF(encoded);
    return out;
}

static PyObject *
sip_row(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "sip_row(env) takes one argument");
        return NULL;
    }
    PyObject *env = args[0];
    if (row_env_type == NULL || !Py_IS_TYPE(env, row_env_type))
        Py_RETURN_NONE;
    PyObject *body = SLOT(env, env_offsets[E_BODY]);
    if (body == NULL || !Py_IS_TYPE(body, row_body_type) || SLOT(body, body_offsets[B_VQ_REPORT]) != Py_None)
        Py_RETURN_NONE;
    PyObject *src = SLOT(body, body_offsets[B_SRC]), *dst = SLOT(body, body_offsets[B_DST]);
    if (src == NULL || dst == NULL || !Py_IS_TYPE(src, row_endpoint_type) || !Py_IS_TYPE(dst, row_endpoint_type))
        Py_RETURN_NONE;
    long long ts, received;
    if (!text_micros(SLOT(env, env_offsets[E_TS]), &ts) || !text_micros(SLOT(env, env_offsets[E_RECEIVED]), &received))
        Py_RETURN_NONE;
    for (int i = 0; i < B_COUNT; i++)
        if (SLOT(body, body_offsets[i]) == NULL)
            Py_RETURN_NONE;
    for (int i = 0; i < E_COUNT; i++)
        if (SLOT(env, env_offsets[i]) == NULL)
            Py_RETURN_NONE;
    for (int i = 0; i < P_COUNT; i++)
        if (SLOT(src, endpoint_offsets[i]) == NULL || SLOT(dst, endpoint_offsets[i]) == NULL)
            Py_RETURN_NONE;

    PyObject *column = body_column(body);
    if (column == NULL || column == Py_None)
        return column;
    PyObject *row = PyTuple_New(26);
    if (row == NULL) {
        Py_DECREF(column);
        return NULL;
    }
    PyTuple_SET_ITEM(row, 6, column); /* first: released with the row on any failure below */
    int is_request = PyObject_IsTrue(SLOT(body, body_offsets[B_IS_REQUEST]));
    PyObject *b;
#define SET(i, value)                                                                                                 \
    do {                                                                                                              \
        PyObject *v_ = (value);                                                                                       \
        if (v_ == NULL)                                                                                               \
            goto fail;                                                                                                \
        PyTuple_SET_ITEM(row, (i), v_);                                                                               \
    } while (0)
#define KEEP(i, value) (Py_INCREF(value), PyTuple_SET_ITEM(row, (i), (value)))
    KEEP(0, SLOT(env, env_offsets[E_ID]));
    KEEP(1, SLOT(env, env_offsets[E_NODE]));
    KEEP(2, SLOT(env, env_offsets[E_ROLE]));
    SET(3, PyLong_FromLongLong(ts));
    SET(4, PyLong_FromLongLong(received));
    KEEP(5, SLOT(env, env_offsets[E_KEY]));
    b = body;
    SET(7, or_else(SLOT(b, body_offsets[B_CALL_ID]), row_empty));
    if (is_request < 0)
        goto fail;
    SET(8, PyBool_FromLong(is_request));
    SET(9, or_else(SLOT(b, body_offsets[B_METHOD]), row_empty));
    SET(10, or_else(SLOT(b, body_offsets[B_STATUS]), row_zero));
    SET(11, or_else(SLOT(b, body_offsets[B_REASON]), row_empty));
    SET(12, or_else(SLOT(b, body_offsets[B_CSEQ]), row_zero));
    SET(13, or_else(SLOT(b, body_offsets[B_FROM_USER]), row_empty));
    SET(14, or_else(SLOT(b, body_offsets[B_TO_USER]), row_empty));
    SET(15, or_else(SLOT(b, body_offsets[B_FROM_TAG]), row_empty));
    SET(16, or_else(SLOT(b, body_offsets[B_TO_TAG]), row_empty));
    SET(17, or_else(SLOT(src, endpoint_offsets[P_IP]), row_empty));
    SET(18, or_else(SLOT(src, endpoint_offsets[P_PORT]), row_zero));
    SET(19, or_else(SLOT(dst, endpoint_offsets[P_IP]), row_empty));
    SET(20, or_else(SLOT(dst, endpoint_offsets[P_PORT]), row_zero));
    SET(21, or_else(SLOT(b, body_offsets[B_TRANSPORT]), row_udp));
    SET(22, or_else(SLOT(b, body_offsets[B_CORRELATION_ID]), row_empty));
    SET(23, or_else(SLOT(b, body_offsets[B_CAPTURE_ID]), row_zero));
    SET(24, or_else(SLOT(b, body_offsets[B_USER_AGENT]), row_empty));
    SET(25, or_else(SLOT(b, body_offsets[B_RAW]), row_empty));
#undef SET
#undef KEEP
    /* Strings, ints and a bool: never part of a cycle. The collector would untrack the tuple at
     * its first look; a row waits in its sink for up to a second, long enough to be looked at. */
    PyObject_GC_UnTrack(row);
    return row;
fail:
    Py_DECREF(row); /* the items not set yet are NULL: tuple deallocation skips them */
    return NULL;
}

#undef SLOT

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"configure_decode", configure_decode, METH_VARARGS, "configure_decode(HepPacket, decode_pure)"},
    {"configure_sip", configure_sip, METH_VARARGS,
     "configure_sip(parse_fields_pure, name_addr, summarize, parse_vq_report, COMPACT, KEPT_HEADERS, MULTI)"},
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(data) -> HepPacket: collectors.hep.decode.decode_pure, in C for the common HEP3 packets."},
    {"configure_envelope", configure_envelope, METH_VARARGS, "configure_envelope(ts_text, seconds_cache)"},
    {"envelope_head", (PyCFunction)(void (*)(void))envelope_head, METH_FASTCALL,
     "envelope_head(v, kind, event_id, node, role, ts_us, received_us, key) -> bytes or None"},
    {"sip_envelope", (PyCFunction)(void (*)(void))sip_envelope, METH_FASTCALL,
     "sip_envelope(payload, correlation_headers, max_message_bytes, v, event_id, node, role, ts_us, received_us, "
     "src_ip, src_port, dst_ip, dst_port, transport, capture_id, capture_name, correlation_id) "
     "-> (call_id, envelope) or None"},
    {"configure_sip_row", configure_sip_row, METH_VARARGS,
     "configure_sip_row(WireSipEnvelope, WireSipBody, WireEndpoint, encode)"},
    {"sip_row", (PyCFunction)(void (*)(void))sip_row, METH_FASTCALL,
     "sip_row(env) -> tuple or None: schemas.tables._wire_sip_row(env)[1], in C for the common envelopes."},
    {"parse_fields", (PyCFunction)(void (*)(void))parse_fields, METH_FASTCALL | METH_KEYWORDS,
     "parse_fields(data, *, correlation_headers=('x-cid',), max_message_bytes=65535) -> dict: "
     "collectors.hep.sip.parse_fields_pure, in C for the common messages."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The HEP collector's hot path in C (see collectors/hep/speedups.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (int c = 0; c < 256; c++)
        needs_escape[c] = c < 0x20 || c == '"' || c == '\\';
    for (int i = 0; i < K_COUNT; i++) {
        keys[i] = PyUnicode_InternFromString(key_names[i]);
        if (keys[i] == NULL)
            return NULL;
    }
    kw_correlation_headers = PyUnicode_InternFromString("correlation_headers");
    kw_max_message_bytes = PyUnicode_InternFromString("max_message_bytes");
    default_correlation = Py_BuildValue("(s)", "x-cid");
    if (kw_correlation_headers == NULL || kw_max_message_bytes == NULL || default_correlation == NULL)
        return NULL;
    return PyModule_Create(&module);
}
