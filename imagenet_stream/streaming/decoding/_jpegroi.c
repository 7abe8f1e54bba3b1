/*
 * _jpegroi: decode one rectangle of a JPEG with libjpeg-turbo, at a DCT scale of 1, 1/2, 1/4 or 1/8.
 *
 * Rows above the rectangle are skipped (jpeg_skip_scanlines: entropy-decoded only), rows below it are
 * never read, and columns beside it are skipped inside each row (jpeg_crop_scanline). The pixels are
 * written as RGBX (grayscale replicated) into a new bytearray of exactly the rectangle.
 *
 * The libjpeg functions are not linked at build time: bind() resolves them at run time from a shared
 * object's dependency tree -- the caller passes Pillow's _imaging module, so this decoder and Pillow's
 * run the very same libjpeg-turbo build (bit-identical pixels need the same IDCT, upsampling and colour
 * code). The headers are only needed for the struct layout; bind() checks that the library accepts it.
 *
 * Nothing here prints or exits: libjpeg errors longjmp back to the caller, warnings are counted.
 * A decode that cannot promise the pixels (and the exceptions) of Pillow's full decode returns a
 * str reason instead, and the Python side then decodes the image with Pillow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* libjpeg's "fancy" upsampling (4:2:2, 4:2:0 chroma) treats the first and last decoded column as an
 * image edge, so a pixel at the rectangle's side would differ from the full decode: decode one more
 * column on each side and drop it. Rows need no such margin: jpeg_skip_scanlines keeps the context
 * rows the vertical upsampling uses (measured with libjpeg-turbo 2.1.5 and 3.2.0; the tests check it). */
#define MARGIN_COLS 1
/* A component row of 2 samples or fewer makes libjpeg switch to plain (box) upsampling: decode at
 * least this many pixels per row (when the image has them). */
#define MIN_COLS 8
#define ROWS_PER_READ 8

/* ------------------------------------------------------------------------------ run-time binding */
typedef struct {
    struct jpeg_error_mgr *(*std_error)(struct jpeg_error_mgr *);
    void (*create_decompress)(j_decompress_ptr, int, size_t);
    void (*destroy_decompress)(j_decompress_ptr);
    void (*mem_src)(j_decompress_ptr, const unsigned char *, unsigned long);
    int (*read_header)(j_decompress_ptr, boolean);
    boolean (*start_decompress)(j_decompress_ptr);
    void (*crop_scanline)(j_decompress_ptr, JDIMENSION *, JDIMENSION *);
    JDIMENSION (*skip_scanlines)(j_decompress_ptr, JDIMENSION);
    JDIMENSION (*read_scanlines)(j_decompress_ptr, JSAMPARRAY, JDIMENSION);
    boolean (*has_multiple_scans)(j_decompress_ptr);
} api_t;

static api_t api;
static int api_bound = 0;

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char warning[JMSG_LENGTH_MAX]; /* the first warning's text (later trace messages reuse msg_code) */
} error_t_;

static void on_error(j_common_ptr cinfo) { longjmp(((error_t_ *)cinfo->err)->jump, 1); }

static void on_emit(j_common_ptr cinfo, int level)
{
    if (level >= 0) /* trace messages */
        return;
    if (cinfo->err->num_warnings++ == 0) /* a corrupt-data warning */
        cinfo->err->format_message(cinfo, ((error_t_ *)cinfo->err)->warning);
}

static void on_output(j_common_ptr cinfo) { (void)cinfo; }

static void init_errors(error_t_ *err)
{
    api.std_error(&err->pub);
    err->pub.error_exit = on_error;
    err->pub.emit_message = on_emit;
    err->pub.output_message = on_output;
    err->warning[0] = '\0';
}

static PyObject *bind(PyObject *self, PyObject *args)
{
    (void)self;
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path))
        return NULL;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* kept open for the process's lifetime */
    if (!handle) {
        PyErr_Format(PyExc_OSError, "dlopen(%s): %s", path, dlerror());
        return NULL;
    }
    api_t found;
    struct {
        const char *name;
        void **slot;
    } symbols[] = {
        {"jpeg_std_error", (void **)&found.std_error},
        {"jpeg_CreateDecompress", (void **)&found.create_decompress},
        {"jpeg_destroy_decompress", (void **)&found.destroy_decompress},
        {"jpeg_mem_src", (void **)&found.mem_src},
        {"jpeg_read_header", (void **)&found.read_header},
        {"jpeg_start_decompress", (void **)&found.start_decompress},
        {"jpeg_crop_scanline", (void **)&found.crop_scanline},
        {"jpeg_skip_scanlines", (void **)&found.skip_scanlines},
        {"jpeg_read_scanlines", (void **)&found.read_scanlines},
        {"jpeg_has_multiple_scans", (void **)&found.has_multiple_scans},
    };
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
        *symbols[i].slot = dlsym(handle, symbols[i].name); /* searches path's dependency tree */
        if (!*symbols[i].slot) {
            PyErr_Format(PyExc_OSError, "%s has no libjpeg-turbo symbol %s", path, symbols[i].name);
            return NULL;
        }
    }
    /* The library must accept this header's ABI (JPEG_LIB_VERSION and the struct size). */
    api_t previous = api;
    api = found;
    struct jpeg_decompress_struct cinfo;
    error_t_ err;
    init_errors(&err);
    cinfo.err = &err.pub;
    if (setjmp(err.jump)) {
        char text[JMSG_LENGTH_MAX];
        err.pub.format_message((j_common_ptr)&cinfo, text);
        api = previous;
        PyErr_Format(PyExc_OSError, "the libjpeg in %s rejects this build's ABI (%d): %s", path,
                     JPEG_LIB_VERSION, text);
        return NULL;
    }
    api.create_decompress(&cinfo, JPEG_LIB_VERSION, sizeof(cinfo));
    api.destroy_decompress(&cinfo);
    api_bound = 1;
    Dl_info info;
    if (dladdr((void *)api.read_header, &info) && info.dli_fname)
        return PyUnicode_DecodeFSDefault(info.dli_fname);
    return PyUnicode_DecodeFSDefault(path);
}

/* ------------------------------------------------------------------------------ header checks */
/* The first SOFn marker code, or -1 when the bytes do not open as a clean JPEG header. */
static int sof_marker(const unsigned char *p, size_t n)
{
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8)
        return -1;
    size_t i = 2;
    while (i < n) {
        if (p[i] != 0xFF)
            return -1; /* junk between segments: libjpeg would warn, leave it to Pillow */
        while (i < n && p[i] == 0xFF)
            i++;
        if (i >= n)
            return -1;
        int m = p[i++];
        if (m >= 0xD0 && m <= 0xD8)
            continue; /* RSTn, SOI: no length */
        if (m < 0xC0 || m == 0xD9 || m == 0xDA || i + 2 > n)
            return -1; /* TEM/reserved (Pillow refuses them), or EOI/SOS before any SOF */
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
            return m;
        size_t len = ((size_t)p[i] << 8) | p[i + 1];
        if (len < 2)
            return -1;
        i += len;
    }
    return -1;
}

/* NULL when the header read into cinfo is one this decoder handles, else why not. */
static const char *unsupported(j_decompress_ptr cinfo, int sof)
{
    if (sof == 0xC3 || sof == 0xC7 || sof == 0xCB || sof == 0xCF)
        return "lossless JPEG";
    if (sof >= 0xC9)
        return "arithmetic-coded JPEG";
    if (sof != 0xC0 && sof != 0xC1 && sof != 0xC2)
        return "hierarchical JPEG";
    if (cinfo->arith_code)
        return "arithmetic-coded JPEG";
    if (cinfo->data_precision != 8)
        return "not 8-bit";
    jpeg_component_info *c = cinfo->comp_info;
    if (cinfo->num_components == 1) {
        if (cinfo->jpeg_color_space != JCS_GRAYSCALE)
            return "unusual colour space";
        return NULL; /* one component: the sampling factors do not change the decode */
    }
    if (cinfo->num_components != 3)
        return "CMYK/YCCK or other component count";
    if (cinfo->jpeg_color_space != JCS_YCbCr && cinfo->jpeg_color_space != JCS_RGB)
        return "unusual colour space";
    int h = c[0].h_samp_factor, v = c[0].v_samp_factor;
    if (c[1].h_samp_factor != 1 || c[1].v_samp_factor != 1 || c[2].h_samp_factor != 1 ||
        c[2].v_samp_factor != 1 || !((h == 1 && v == 1) || (h == 2 && v == 1) || (h == 2 && v == 2)))
        return "chroma subsampling other than 4:4:4, 4:2:2 or 4:2:0";
    return NULL;
}

/* ------------------------------------------------------------------------------ decoding */
typedef struct {
    const unsigned char *data;
    size_t size;
    int denom;                     /* 1, 2, 4 or 8 */
    JDIMENSION x0, y0, x1, y1;     /* the rectangle, in the scaled image */
    unsigned char *out;            /* (y1 - y0) rows of (x1 - x0) RGBX pixels, or NULL: header only */
    JDIMENSION width, height;      /* out: the image's size */
    char reason[JMSG_LENGTH_MAX + 40]; /* out: why the caller must fall back; empty on success */
} job_t;

/* The first marker code in entropy-coded bytes (FF00 stuffing, FF fill bytes and RSTn skipped), or 0. */
static int next_marker(const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end) {
        const unsigned char *ff = memchr(p, 0xFF, (size_t)(end - p));
        if (!ff)
            return 0;
        p = ff + 1;
        while (p < end && *p == 0xFF)
            p++;
        if (p >= end)
            return 0;
        int m = *p++;
        if (m != 0x00 && !(m >= 0xD0 && m <= 0xD7))
            return m;
    }
    return 0;
}

static void run(job_t *job)
{
    struct jpeg_decompress_struct cinfo;
    error_t_ err;
    unsigned char *volatile scratch = NULL;
    job->reason[0] = '\0';
    init_errors(&err);
    cinfo.err = &err.pub;
    if (setjmp(err.jump)) {
        char text[JMSG_LENGTH_MAX];
        err.pub.format_message((j_common_ptr)&cinfo, text);
        snprintf(job->reason, sizeof(job->reason), "libjpeg error: %s", text);
        api.destroy_decompress(&cinfo);
        free(scratch);
        return;
    }
    api.create_decompress(&cinfo, JPEG_LIB_VERSION, sizeof(cinfo));
    int sof = sof_marker(job->data, job->size);
    if (sof < 0) {
        snprintf(job->reason, sizeof(job->reason), "not a clean JPEG header");
        goto done;
    }
    api.mem_src(&cinfo, job->data, (unsigned long)job->size);
    api.read_header(&cinfo, TRUE);
    job->width = cinfo.image_width;
    job->height = cinfo.image_height;
    const char *why = unsupported(&cinfo, sof);
    if (why) {
        snprintf(job->reason, sizeof(job->reason), "%s", why);
        goto done;
    }
    if (err.pub.num_warnings) {
        snprintf(job->reason, sizeof(job->reason), "libjpeg warning in the header: %s", err.warning);
        goto done;
    }
    if (!job->out)
        goto done;

    /* Pillow's settings for a draft("RGB", ...) decode: scaled ISLOW IDCT, fancy upsampling. */
    cinfo.out_color_space = JCS_EXT_RGBX;
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)job->denom;
    api.start_decompress(&cinfo); /* multi-scan files are read whole here */
    if (job->x1 > cinfo.output_width || job->y1 > cinfo.output_height || job->x0 >= job->x1 ||
        job->y0 >= job->y1) {
        snprintf(job->reason, sizeof(job->reason), "rectangle outside the %ux%u scaled image",
                 cinfo.output_width, cinfo.output_height);
        goto done;
    }
    JDIMENSION want_x0 = job->x0 > MARGIN_COLS ? job->x0 - MARGIN_COLS : 0;
    JDIMENSION want_x1 = job->x1 + MARGIN_COLS < cinfo.output_width ? job->x1 + MARGIN_COLS
                                                                     : cinfo.output_width;
    /* libjpeg drops to plain (box) upsampling for a component row of 2 samples or fewer: keep 8 pixels. */
    while (want_x1 - want_x0 < MIN_COLS && (want_x0 > 0 || want_x1 < cinfo.output_width)) {
        if (want_x1 < cinfo.output_width)
            want_x1++;
        else
            want_x0--;
    }
    JDIMENSION xoff = want_x0, cwidth = want_x1 - want_x0;
    api.crop_scanline(&cinfo, &xoff, &cwidth); /* xoff moves down to an iMCU column boundary */
    if (job->y0)
        api.skip_scanlines(&cinfo, job->y0); /* whole iMCU rows: entropy decoding only */

    size_t out_stride = (size_t)(job->x1 - job->x0) * 4;
    size_t row_bytes = (size_t)cinfo.output_width * 4; /* output_width is now cwidth */
    size_t left = (size_t)(job->x0 - xoff) * 4;
    int direct = left == 0 && row_bytes == out_stride; /* no column to drop: decode into out itself */
    if (!direct && !(scratch = malloc(row_bytes * ROWS_PER_READ))) {
        snprintf(job->reason, sizeof(job->reason), "out of memory");
        goto done;
    }
    JSAMPROW rows[ROWS_PER_READ];
    while (cinfo.output_scanline < job->y1) {
        JDIMENSION y = cinfo.output_scanline - job->y0;
        JDIMENSION n = job->y1 - cinfo.output_scanline;
        if (n > ROWS_PER_READ)
            n = ROWS_PER_READ;
        for (JDIMENSION i = 0; i < n; i++)
            rows[i] = direct ? job->out + (size_t)(y + i) * out_stride : scratch + i * row_bytes;
        JDIMENSION got = api.read_scanlines(&cinfo, rows, n);
        if (got == 0) {
            snprintf(job->reason, sizeof(job->reason), "no scanline returned");
            goto done;
        }
        if (!direct)
            for (JDIMENSION i = 0; i < got; i++)
                memcpy(job->out + (size_t)(y + i) * out_stride, scratch + i * row_bytes + left, out_stride);
    }
    if (err.pub.num_warnings) {
        snprintf(job->reason, sizeof(job->reason), "libjpeg warning: %s", err.warning);
        goto done;
    }
    /* Rows below the rectangle were not decoded. Pillow raises for a scan cut short (its source
     * suspends); a scan whose entropy-coded data runs on to an EOI marker is complete. */
    if (!api.has_multiple_scans(&cinfo)) {
        int marker = cinfo.unread_marker;
        if (marker == 0 || (marker >= 0xD0 && marker <= 0xD7))
            marker = next_marker(cinfo.src->next_input_byte, cinfo.src->bytes_in_buffer);
        if (marker != 0xD9)
            snprintf(job->reason, sizeof(job->reason),
                     marker ? "scan ends in marker 0x%02x, not EOI" : "truncated scan (no EOI)", marker);
    }
done:
    api.destroy_decompress(&cinfo);
    free(scratch);
}

/* ------------------------------------------------------------------------------ Python API */
static int get_job(PyObject *data, Py_buffer *view, job_t *job)
{
    if (!api_bound) {
        PyErr_SetString(PyExc_RuntimeError, "_jpegroi.bind() has not found a libjpeg-turbo yet");
        return -1;
    }
    if (PyObject_GetBuffer(data, view, PyBUF_SIMPLE) < 0)
        return -1;
    memset(job, 0, sizeof(*job));
    job->data = view->buf;
    job->size = (size_t)view->len;
    return 0;
}

static PyObject *header(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *data;
    Py_buffer view;
    job_t job;
    if (!PyArg_ParseTuple(args, "O", &data) || get_job(data, &view, &job) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS run(&job);
    Py_END_ALLOW_THREADS PyBuffer_Release(&view);
    return Py_BuildValue("(IIs)", job.width, job.height, job.reason);
}

static PyObject *decode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *data;
    Py_buffer view;
    job_t job;
    int denom;
    unsigned int x0, y0, x1, y1;
    if (!PyArg_ParseTuple(args, "OiIIII", &data, &denom, &x0, &y0, &x1, &y1))
        return NULL;
    if (!(denom == 1 || denom == 2 || denom == 4 || denom == 8) || x0 >= x1 || y0 >= y1) {
        PyErr_Format(PyExc_ValueError, "bad scale 1/%d or rectangle (%u, %u, %u, %u)", denom, x0, y0, x1, y1);
        return NULL;
    }
    size_t nbytes = (size_t)(x1 - x0) * (y1 - y0) * 4;
    if (nbytes > PY_SSIZE_T_MAX) {
        PyErr_SetString(PyExc_OverflowError, "rectangle too large");
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)nbytes); /* not zero-filled */
    if (!out)
        return NULL;
    if (get_job(data, &view, &job) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    job.denom = denom;
    job.x0 = x0, job.y0 = y0, job.x1 = x1, job.y1 = y1;
    job.out = (unsigned char *)PyByteArray_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS run(&job);
    Py_END_ALLOW_THREADS PyBuffer_Release(&view);
    if (job.reason[0]) {
        Py_DECREF(out);
        return PyUnicode_FromString(job.reason);
    }
    return out;
}

/* ------------------------------------------------------------------------------ RGBX -> planar RGB */
#define PLANAR_BLOCK 512

/* Pixels [0, n) of RGBX words s into the three planes (r, g, b): a plain loop the compiler vectorises. */
static void split_words(const uint32_t *restrict s, size_t n, unsigned char *restrict r, unsigned char *restrict g,
                        unsigned char *restrict b)
{
    for (size_t x = 0; x < n; x++) {
        uint32_t p = s[x];
        r[x] = (unsigned char)(p & 0xff);
        g[x] = (unsigned char)((p >> 8) & 0xff);
        b[x] = (unsigned char)((p >> 16) & 0xff);
    }
}

/* Rows of RGBX pixels -> 3 planes of width x height, mirrored left-right when flip: a mirrored row is
 * reversed a block at a time into a small buffer first (a reversed load does not vectorise). */
static void planar_rows(const unsigned char *src, size_t width, size_t height, unsigned char *dst, int flip)
{
    size_t plane = width * height;
    uint32_t block[PLANAR_BLOCK];
    for (size_t y = 0; y < height; y++) {
        const unsigned char *row = src + y * width * 4;
        unsigned char *r = dst + y * width;
        for (size_t x0 = 0; x0 < width; x0 += PLANAR_BLOCK) {
            size_t n = width - x0 < PLANAR_BLOCK ? width - x0 : PLANAR_BLOCK;
            if (flip) {
                for (size_t i = 0; i < n; i++) /* output pixel x0 + i is input pixel width - 1 - (x0 + i) */
                    memcpy(&block[i], row + 4 * (width - 1 - x0 - i), 4);
            } else {
                memcpy(block, row + 4 * x0, 4 * n);
            }
            split_words(block, n, r + x0, r + plane + x0, r + 2 * plane + x0);
        }
    }
}

static PyObject *planar(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src_obj, *dst_obj;
    Py_ssize_t width, height;
    int flip;
    Py_buffer src, dst;
    if (!PyArg_ParseTuple(args, "OnnOp", &src_obj, &width, &height, &dst_obj, &flip))
        return NULL;
    if (width < 1 || height < 1 || width > PY_SSIZE_T_MAX / 4 / height) {
        PyErr_Format(PyExc_ValueError, "bad size %zd x %zd", width, height);
        return NULL;
    }
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst_obj, &dst, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    if (src.len != width * height * 4 || dst.len != width * height * 3) {
        PyErr_Format(PyExc_ValueError, "%zd x %zd pixels need %zd RGBX bytes in and %zd out, got %zd and %zd", width,
                     height, width * height * 4, width * height * 3, src.len, dst.len);
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS planar_rows(src.buf, (size_t)width, (size_t)height, dst.buf, flip);
    Py_END_ALLOW_THREADS PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS,
     "bind(path) -> str: use the libjpeg-turbo that the shared object at path loads; returns its file."},
    {"header", header, METH_VARARGS,
     "header(data) -> (width, height, reason): reason is '' when decode() handles the image."},
    {"decode", decode, METH_VARARGS,
     "decode(data, denom, x0, y0, x1, y1) -> bytearray | str: the rectangle [x0, x1) x [y0, y1) of the\n"
     "image decoded at scale 1/denom, as RGBX rows; a str says why the caller must decode it otherwise."},
    {"planar", planar, METH_VARARGS,
     "planar(src, width, height, dst, flip) -> None: RGBX rows (width*height*4 bytes) into three planes\n"
     "R, G, B (width*height*3 bytes of dst), mirrored left-right when flip."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_jpegroi",
    .m_doc = "Region-of-interest JPEG decoding with libjpeg-turbo (see imagenet_stream/streaming/decoding/jpeg_region.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__jpegroi(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "JPEG_LIB_VERSION", JPEG_LIB_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
