/*
 * callscope.store._arrow -- rows of Python values into Arrow buffers, for the chDB fast insert.
 *
 *   columns(data, specs, column_oriented) -> list of column buffers, or None
 *
 * pyarrow's own conversion (pa.array(rows, struct_type)) looks at every value through its
 * generic inference and conversion machinery, holding the GIL: in the embedded process it
 * runs in the sink's worker thread and takes the interpreter away from the event loop
 * (~5 us per sip_messages row, ~8 per call_legs row under load). The rows the processors
 * write hold a handful of plain types, which this function copies straight into Arrow's
 * layout: one pass over the rows, one growing buffer per column.
 *
 * specs: one tuple (kind, width, signed, datetime_scale, is_list) per column:
 *   kind 0 binary    str (UTF-8) or bytes
 *   kind 1 bool      True or False
 *   kind 2 integer   int that fits ``width`` bytes, ``signed`` or not
 *   kind 3 float64   float, or int of at most 2**53 in magnitude (pyarrow refuses the others)
 *   kind 4 timestamp int ticks of the column's unit (width 8); a datetime when
 *                    ``datetime_scale`` (ticks per microsecond) is not 0, naive or in
 *                    datetime.timezone.utc (naive is UTC, as pyarrow reads it)
 *   is_list: the value is a list or tuple of the kind's values
 * Any value of the column may be None (a null), except inside a list.
 *
 * Returns, per column, (length, null_count, validity, offsets, data): validity a bitmap or
 * None, offsets int32 (binary and list columns) or None, data the values' buffer (a bool
 * column's is a bitmap); for a list column ``data`` is its child's own 5-tuple. The buffers
 * are bytearrays (pyarrow reads them in place). Returns None -- and pyarrow converts the
 * rows, raising its own errors -- for anything else: another type (a subclass included, but
 * for tuple rows), an int out of range, a datetime in another time zone, a str that is not
 * valid UTF-8, rows of the wrong length, more than 2 GiB in one column. So what this function
 * returns is what pyarrow builds, and it never decides an error: tests/store/test_arrow.py
 * compares the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#include <stdint.h>
#include <string.h>

enum { K_BINARY = 0, K_BOOL = 1, K_INT = 2, K_FLOAT64 = 3, K_TIMESTAMP = 4 };

/* A value this function does not convert: the caller gives the rows to pyarrow. */
#define UNSUPPORTED 1

typedef struct {
    PyObject *obj; /* bytearray */
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

typedef struct {
    int kind;
    int width;
    int is_signed;
    int64_t scale; /* datetime -> ticks: microseconds times scale; 0 refuses datetimes */
    Py_ssize_t length;
    Py_ssize_t nulls;
    Buf validity; /* allocated at the first null */
    Buf offsets;  /* binary and list columns */
    Buf data;     /* values, or a bool column's bitmap */
} Column;

typedef struct {
    Column top;
    int is_list;
    Column child; /* a list column's values */
} Spec;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (b->obj == NULL) {
        b->obj = PyByteArray_FromStringAndSize(NULL, cap);
        if (b->obj == NULL)
            return -1;
    } else if (PyByteArray_Resize(b->obj, cap) < 0) {
        return -1;
    }
    b->cap = cap;
    return 0;
}

static inline char *
buf_at(Buf *b, Py_ssize_t at)
{
    return PyByteArray_AS_STRING(b->obj) + at;
}

static int
buf_append(Buf *b, const void *src, Py_ssize_t size)
{
    if (buf_reserve(b, size) < 0)
        return -1;
    if (size)
        memcpy(buf_at(b, b->len), src, (size_t)size);
    b->len += size;
    return 0;
}

/* Set bit i (LSB first), growing the bitmap; unset bits of new bytes are 0. */
static int
bit_set(Buf *b, Py_ssize_t i, int value)
{
    Py_ssize_t byte = i >> 3;
    if (byte >= b->len) {
        Py_ssize_t grow = byte + 1 - b->len;
        if (buf_reserve(b, grow) < 0)
            return -1;
        memset(buf_at(b, b->len), 0, (size_t)grow);
        b->len = byte + 1;
    }
    if (value)
        buf_at(b, byte)[0] |= (char)(1u << (i & 7));
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
integer(PyObject *v, Column *c, int64_t *out)
{
    if (!PyLong_CheckExact(v))
        return UNSUPPORTED;
    if (c->is_signed) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return UNSUPPORTED;
        }
        if (c->width < 8) {
            long long lim = 1LL << (c->width * 8 - 1);
            if (x < -lim || x >= lim)
                return UNSUPPORTED;
        }
        *out = (int64_t)x;
        return 0;
    }
    unsigned long long x = PyLong_AsUnsignedLongLong(v); /* negative: OverflowError */
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return UNSUPPORTED;
    }
    if (c->width < 8 && x >= (1ULL << (c->width * 8)))
        return UNSUPPORTED;
    memcpy(out, &x, sizeof x);
    return 0;
}

/* Append one non-null value of a scalar column (a list column's child included). */
static int
append_value(Column *c, PyObject *v)
{
    switch (c->kind) {
    case K_BINARY: {
        const char *p;
        Py_ssize_t n;
        if (PyUnicode_CheckExact(v)) {
            p = PyUnicode_AsUTF8AndSize(v, &n);
            if (p == NULL) { /* a lone surrogate */
                PyErr_Clear();
                return UNSUPPORTED;
            }
        } else if (PyBytes_CheckExact(v)) {
            p = PyBytes_AS_STRING(v);
            n = PyBytes_GET_SIZE(v);
        } else {
            return UNSUPPORTED;
        }
        if (n > INT32_MAX - c->data.len)
            return UNSUPPORTED; /* past int32 offsets: pyarrow chunks it */
        if (buf_append(&c->data, p, n) < 0)
            return -1;
        int32_t end = (int32_t)c->data.len;
        return buf_append(&c->offsets, &end, 4);
    }
    case K_BOOL:
        if (v != Py_True && v != Py_False)
            return UNSUPPORTED;
        return bit_set(&c->data, c->length, v == Py_True);
    case K_INT: {
        int64_t x;
        int r = integer(v, c, &x);
        if (r)
            return r;
        /* little-endian hosts (x86-64, aarch64): the low bytes are the narrower integer */
        return buf_append(&c->data, &x, c->width);
    }
    case K_FLOAT64: {
        double x;
        if (PyFloat_CheckExact(v)) {
            x = PyFloat_AS_DOUBLE(v);
        } else if (PyLong_CheckExact(v)) {
            /* pyarrow takes an int only where a double holds it exactly: |x| <= 2**53 */
            int overflow = 0;
            long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (n == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return UNSUPPORTED;
            }
            if (n > (1LL << 53) || n < -(1LL << 53))
                return UNSUPPORTED;
            x = (double)n;
        } else {
            return UNSUPPORTED;
        }
        return buf_append(&c->data, &x, 8);
    }
    case K_TIMESTAMP: {
        int64_t ticks;
        if (PyLong_CheckExact(v)) {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return UNSUPPORTED;
            }
            ticks = (int64_t)x;
        } else if (PyDateTime_CheckExact(v) && c->scale) {
            PyObject *tz = PyDateTime_DATE_GET_TZINFO(v);
            if (tz != Py_None && tz != PyDateTime_TimeZone_UTC)
                return UNSUPPORTED;
            int64_t days = days_from_civil(PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v));
            int64_t secs = days * 86400 + PyDateTime_DATE_GET_HOUR(v) * 3600 + PyDateTime_DATE_GET_MINUTE(v) * 60 +
                           PyDateTime_DATE_GET_SECOND(v);
            int64_t micros = secs * 1000000 + PyDateTime_DATE_GET_MICROSECOND(v);
            if (c->scale > 1 && (micros > INT64_MAX / c->scale || micros < INT64_MIN / c->scale))
                return UNSUPPORTED;
            ticks = micros * c->scale;
        } else {
            return UNSUPPORTED;
        }
        return buf_append(&c->data, &ticks, 8);
    }
    }
    return UNSUPPORTED;
}

/* Validity bit ``c->length`` set to 0 (the bitmap made at the first null, earlier bits 1). */
static int
null_bit(Column *c)
{
    if (c->validity.obj == NULL) {
        for (Py_ssize_t i = 0; i < c->length; i++)
            if (bit_set(&c->validity, i, 1) < 0)
                return -1;
    }
    c->nulls++;
    return bit_set(&c->validity, c->length, 0);
}

/* A null in a top-level scalar column: validity 0, an empty or zero value in the data. */
static int
append_null(Column *c)
{
    if (null_bit(c) < 0)
        return -1;
    switch (c->kind) {
    case K_BINARY: {
        int32_t end = (int32_t)c->data.len;
        return buf_append(&c->offsets, &end, 4);
    }
    case K_BOOL:
        return bit_set(&c->data, c->length, 0);
    case K_INT: {
        int64_t zero = 0;
        return buf_append(&c->data, &zero, c->width);
    }
    default: {
        int64_t zero = 0;
        return buf_append(&c->data, &zero, 8);
    }
    }
}

/* A null list: validity 0, an empty range of the child. */
static int
append_null_list(Spec *s)
{
    if (null_bit(&s->top) < 0)
        return -1;
    int32_t end = (int32_t)s->child.length;
    return buf_append(&s->top.offsets, &end, 4);
}

static int
mark_valid(Column *c)
{
    return c->validity.obj == NULL ? 0 : bit_set(&c->validity, c->length, 1);
}

static int
append(Spec *s, PyObject *v)
{
    Column *c = &s->top;
    int r;
    if (v == Py_None) {
        if (s->is_list) {
            /* a null list: validity 0, an empty range of the child */
            if ((r = append_null_list(s)) != 0)
                return r;
        } else if ((r = append_null(c)) != 0) {
            return r;
        }
        c->length++;
        return 0;
    }
    if (!s->is_list) {
        if ((r = append_value(c, v)) != 0)
            return r;
    } else {
        if (!PyList_CheckExact(v) && !PyTuple_CheckExact(v))
            return UNSUPPORTED;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (items[i] == Py_None)
                return UNSUPPORTED;
            if ((r = append_value(&s->child, items[i])) != 0)
                return r;
            s->child.length++;
        }
        if (s->child.length > INT32_MAX)
            return UNSUPPORTED;
        int32_t end = (int32_t)s->child.length;
        if (buf_append(&c->offsets, &end, 4) < 0)
            return -1;
    }
    if (mark_valid(c) < 0)
        return -1;
    c->length++;
    return 0;
}

static int
parse_spec(PyObject *spec, Spec *s)
{
    long f[5];
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 5) {
        PyErr_SetString(PyExc_ValueError, "a column spec is (kind, width, signed, datetime_scale, is_list)");
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        f[i] = PyLong_AsLong(PyTuple_GET_ITEM(spec, i));
        if (f[i] == -1 && PyErr_Occurred())
            return -1;
    }
    int kind = (int)f[0], width = (int)f[1];
    if (kind < K_BINARY || kind > K_TIMESTAMP || (kind == K_INT && width != 1 && width != 2 && width != 4 && width != 8) ||
        f[3] < 0) {
        PyErr_Format(PyExc_ValueError, "unknown column spec (%ld, %ld, %ld, %ld, %ld)", f[0], f[1], f[2], f[3], f[4]);
        return -1;
    }
    Column *c = f[4] ? &s->child : &s->top;
    c->kind = kind;
    c->width = kind == K_INT ? width : 8;
    c->is_signed = f[2] != 0;
    c->scale = f[3];
    s->is_list = f[4] != 0;
    int32_t zero = 0;
    if (s->is_list && buf_append(&s->top.offsets, &zero, 4) < 0)
        return -1;
    if (c->kind == K_BINARY && buf_append(&c->offsets, &zero, 4) < 0)
        return -1;
    return 0;
}

static void
buf_release(Buf *b)
{
    Py_CLEAR(b->obj);
}

static void
column_release(Column *c)
{
    buf_release(&c->validity);
    buf_release(&c->offsets);
    buf_release(&c->data);
}

/* A finished buffer: the bytearray cut to its length (an empty one when never written). */
static PyObject *
buf_finish(Buf *b)
{
    if (b->obj == NULL)
        return PyByteArray_FromStringAndSize(NULL, 0);
    if (PyByteArray_Resize(b->obj, b->len) < 0)
        return NULL;
    PyObject *out = b->obj;
    b->obj = NULL;
    return out;
}

static PyObject *
column_finish(Column *c, int has_offsets, PyObject *child)
{
    PyObject *validity = NULL, *offsets = NULL, *data = NULL;
    if (c->validity.obj != NULL) {
        /* bits past the length may be set only by a later row: none are */
        if ((validity = buf_finish(&c->validity)) == NULL)
            goto fail;
    } else {
        validity = Py_NewRef(Py_None);
    }
    if (has_offsets) {
        if ((offsets = buf_finish(&c->offsets)) == NULL)
            goto fail;
    } else {
        offsets = Py_NewRef(Py_None);
    }
    if (child != NULL)
        data = Py_NewRef(child);
    else if ((data = buf_finish(&c->data)) == NULL)
        goto fail;
    return Py_BuildValue("(nnNNN)", c->length, c->nulls, validity, offsets, data);
fail:
    Py_XDECREF(validity);
    Py_XDECREF(offsets);
    return NULL;
}

static PyObject *
columns(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "columns(data, specs, column_oriented) takes 3 arguments");
        return NULL;
    }
    PyObject *data = args[0], *specs = args[1];
    int column_oriented = PyObject_IsTrue(args[2]);
    if (column_oriented < 0)
        return NULL;
    if (!PyTuple_Check(specs)) {
        PyErr_SetString(PyExc_TypeError, "specs must be a tuple");
        return NULL;
    }
    if (!PyList_CheckExact(data) && !PyTuple_CheckExact(data))
        Py_RETURN_NONE;
    Py_ssize_t ncols = PyTuple_GET_SIZE(specs);
    Py_ssize_t nouter = PySequence_Fast_GET_SIZE(data);
    PyObject **outer = PySequence_Fast_ITEMS(data);
    Py_ssize_t nrows = nouter;
    if (column_oriented) {
        if (nouter != ncols)
            Py_RETURN_NONE;
        nrows = 0;
        for (Py_ssize_t j = 0; j < ncols; j++) {
            PyObject *col = outer[j];
            if (!PyList_CheckExact(col) && !PyTuple_Check(col))
                Py_RETURN_NONE;
            if (j == 0)
                nrows = PySequence_Fast_GET_SIZE(col);
            else if (PySequence_Fast_GET_SIZE(col) != nrows)
                Py_RETURN_NONE;
        }
    }
    Spec *sp = PyMem_Calloc(ncols ? (size_t)ncols : 1, sizeof(Spec));
    if (sp == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    int r = 0;
    for (Py_ssize_t j = 0; j < ncols && r == 0; j++)
        if (parse_spec(PyTuple_GET_ITEM(specs, j), &sp[j]) < 0)
            r = -1;
    if (r == 0 && column_oriented) {
        for (Py_ssize_t j = 0; j < ncols && r == 0; j++) {
            PyObject **items = PySequence_Fast_ITEMS(outer[j]);
            for (Py_ssize_t i = 0; i < nrows && r == 0; i++)
                r = append(&sp[j], items[i]);
        }
    } else if (r == 0) {
        for (Py_ssize_t i = 0; i < nrows && r == 0; i++) {
            PyObject *row = outer[i];
            if ((!PyTuple_Check(row) && !PyList_CheckExact(row)) || PySequence_Fast_GET_SIZE(row) != ncols) {
                r = UNSUPPORTED;
                break;
            }
            PyObject **items = PySequence_Fast_ITEMS(row);
            for (Py_ssize_t j = 0; j < ncols && r == 0; j++)
                r = append(&sp[j], items[j]);
        }
    }
    if (r == UNSUPPORTED) {
        result = Py_NewRef(Py_None);
    } else if (r == 0 && (result = PyList_New(ncols)) != NULL) {
        for (Py_ssize_t j = 0; j < ncols; j++) {
            Spec *s = &sp[j];
            PyObject *col;
            if (s->is_list) {
                PyObject *child = column_finish(&s->child, s->child.kind == K_BINARY, NULL);
                col = child == NULL ? NULL : column_finish(&s->top, 1, child);
                Py_XDECREF(child);
            } else {
                col = column_finish(&s->top, s->top.kind == K_BINARY, NULL);
            }
            if (col == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, j, col);
        }
    }
    for (Py_ssize_t j = 0; j < ncols; j++) {
        column_release(&sp[j].top);
        column_release(&sp[j].child);
    }
    PyMem_Free(sp);
    return result;
}

static PyMethodDef methods[] = {
    {"columns", (PyCFunction)(void (*)(void))columns, METH_FASTCALL,
     "columns(data, specs, column_oriented) -> list of (length, null_count, validity, offsets, data), or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_arrow", "Rows of Python values into Arrow buffers (see callscope/store/arrow.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__arrow(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
