/* Unit tests of the second batch of 2-D layers and the weight-side extras: ZeroPadding2D,
 * Cropping2D, UpSampling2D (hand-computed maps), DepthwiseConv2D and SeparableConv2D (against
 * direct loops, strides, dilation, depth multipliers), dilated Conv2D (against a direct dilated
 * convolution), finite-difference checks of each; the constraints (MaxNorm, UnitNorm, NonNeg,
 * MinMaxNorm: Keras's formulas in closed form over every axis choice, parsing and refusals, the
 * model-level apply that skips frozen layers); activity regularization (the penalty, its gradient,
 * the model's sum, no fused head). No MPI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

static const dpt_pass train_pass = {.training = true, .seed = 4321, .rank = 1, .step = 9};
static const dpt_pass infer_pass = {.training = false, .seed = 4321, .rank = 1, .step = 9};

static dpt_shape shp(int r, int64_t a, int64_t b, int64_t c) {
    return (dpt_shape){.rank = r, .dim = {a, b, c}};
}

static void gc_both(const char *cls, const char *cfg, dpt_shape in, const char *what) {
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer(cls, cfg, in, &l));
    l->index = 3;
    gc_bind_params(l, 11);
    /* random biases so that the bias gradient is not checked at zero only */
    for (int64_t k = 0; k < dpt_layer_n_params(l); k++)
        l->params[k] += 0.05f * (float)((k * 7) % 5 - 2);
    gc_assert_ok(gc_check_layer(l, &train_pass, 3, 5), what);
    gc_assert_ok(gc_check_layer(l, &infer_pass, 2, 6), what);
    gc_free_layer(&l);
}

/* ---- padding, cropping, upsampling ------------------------------------------------------- */

static void test_pad_crop_up_values(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    /* x (1, 2, 3, 1) = 1..6; padding ((1, 0), (2, 1)) -> (3, 6) */
    float x[6] = {1, 2, 3, 4, 5, 6}, y[64];
    assert_ok(
        gc_make_layer("ZeroPadding2D", "{\"padding\": [[1, 0], [2, 1]]}", shp(3, 2, 3, 1), &l));
    assert_true(l->out_shape.dim[0] == 3 && l->out_shape.dim[1] == 6 && l->out_shape.dim[2] == 1);
    l->ops->forward(l, &infer_pass, x, y, 1);
    const float zp[18] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 0};
    for (int i = 0; i < 18; i++)
        assert_true(y[i] == zp[i]);
    gc_free_layer(&l);
    /* int and pair forms */
    assert_ok(gc_make_layer("ZeroPadding2D", "{\"padding\": 2}", shp(3, 2, 3, 1), &l));
    assert_true(l->out_shape.dim[0] == 6 && l->out_shape.dim[1] == 7);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("ZeroPadding2D", "{\"padding\": [1, 3]}", shp(3, 2, 3, 1), &l));
    assert_true(l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 9);
    gc_free_layer(&l);
    assert_ok(gc_make_layer("ZeroPadding2D", "{}", shp(3, 2, 3, 1), &l)); /* default (1, 1) */
    assert_true(l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 5);
    gc_free_layer(&l);
    /* cropping ((0, 1), (1, 1)) of the (2, 3) image -> (1, 1) = x[0, 1] */
    assert_ok(gc_make_layer("Cropping2D", "{\"cropping\": [[0, 1], [1, 1]]}", shp(3, 2, 3, 1), &l));
    assert_true(l->out_shape.dim[0] == 1 && l->out_shape.dim[1] == 1);
    l->ops->forward(l, &infer_pass, x, y, 1);
    assert_true(y[0] == 2.0f);
    float dy[1] = {3}, dx[6];
    l->ops->backward(l, &infer_pass, x, y, dy, dx, 1);
    const float dc[6] = {0, 3, 0, 0, 0, 0};
    for (int i = 0; i < 6; i++)
        assert_true(dx[i] == dc[i]);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("Cropping2D", "{\"cropping\": 1}", shp(3, 2, 3, 1), &l),
                      DPT_ERR_CONFIG, "config.cropping: crops (2, 2) leave nothing");
    assert_status_msg(gc_make_layer("Cropping2D", "{\"cropping\": [1, 2, 3]}", shp(3, 5, 5, 1), &l),
                      DPT_ERR_CONFIG, "config.cropping: must be an integer, a list of 2");
    assert_status_msg(gc_make_layer("ZeroPadding2D", "{\"padding\": -1}", shp(3, 5, 5, 1), &l),
                      DPT_ERR_CONFIG, "config.padding: must be integers >= 0");
    assert_status_msg(gc_make_layer("ZeroPadding2D", "{\"data_format\": \"channels_first\"}",
                                    shp(3, 5, 5, 1), &l),
                      DPT_ERR_CONFIG, "config.data_format: only \"channels_last\" is supported");
    assert_status_msg(gc_make_layer("ZeroPadding2D", "{}", shp(2, 5, 5, 0), &l), DPT_ERR_CONFIG,
                      "ZeroPadding2D needs an input of shape (None, height, width, channels)");
    /* UpSampling2D (2, 3) of x (1, 2, 1, 2): y[oh, ow] = x[oh / 2, ow / 3] */
    float u[4] = {1, 10, 2, 20};
    assert_ok(gc_make_layer("UpSampling2D", "{\"size\": [2, 3]}", shp(3, 2, 1, 2), &l));
    assert_true(l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 3 && l->out_shape.dim[2] == 2);
    l->ops->forward(l, &infer_pass, u, y, 1);
    for (int oh = 0; oh < 4; oh++)
        for (int ow = 0; ow < 3; ow++)
            for (int c = 0; c < 2; c++)
                assert_true(y[(oh * 3 + ow) * 2 + c] == u[(oh / 2) * 2 + c]);
    float g[24], gx[4];
    for (int i = 0; i < 24; i++)
        g[i] = (float)i;
    l->ops->backward(l, &infer_pass, u, y, g, gx, 1);
    /* channel 0 of the first input row: sum of g at (oh 0..1, ow 0..2, c 0) = 0+2+4+6+8+10 */
    assert_true(gx[0] == 30.0f && gx[1] == 36.0f && gx[2] == 102.0f && gx[3] == 108.0f);
    gc_free_layer(&l);
    assert_status_msg(
        gc_make_layer("UpSampling2D", "{\"interpolation\": \"bilinear\"}", shp(3, 2, 2, 1), &l),
        DPT_ERR_CONFIG,
        "t.json: model.config.layers[3].config.interpolation: only \"nearest\" is "
        "supported, got \"bilinear\"");
    assert_ok(
        gc_make_layer("UpSampling2D", "{\"interpolation\": \"NEAREST\"}", shp(3, 2, 2, 1), &l));
    assert_true(l->out_shape.dim[0] == 4 && l->out_shape.dim[1] == 4);
    gc_free_layer(&l);
}

static void test_pad_crop_up_gradients(void **state) {
    (void)state;
    gc_both("ZeroPadding2D", "{\"padding\": [[2, 0], [1, 3]]}", shp(3, 3, 2, 2), "zero padding");
    gc_both("ZeroPadding2D", "{\"padding\": 1}", shp(3, 2, 2, 3), "zero padding 1");
    gc_both("Cropping2D", "{\"cropping\": [[1, 0], [0, 2]]}", shp(3, 4, 5, 2), "cropping");
    gc_both("Cropping2D", "{\"cropping\": [1, 1]}", shp(3, 4, 4, 1), "cropping sym");
    gc_both("UpSampling2D", "{\"size\": 2}", shp(3, 2, 3, 2), "upsampling 2");
    gc_both("UpSampling2D", "{\"size\": [1, 3]}", shp(3, 2, 2, 3), "upsampling 1x3");
}

/* ---- depthwise and separable convolutions ------------------------------------------------ */

typedef struct {
    int H, W, C, M, KH, KW, SH, SW, DH, DW;
    bool same;
    int OH, OW, PT, PL;
} geom;

static void geom_out(geom *g) {
    int ekh = (g->KH - 1) * g->DH + 1, ekw = (g->KW - 1) * g->DW + 1;
    g->OH = g->same ? (g->H + g->SH - 1) / g->SH : (g->H - ekh) / g->SH + 1;
    g->OW = g->same ? (g->W + g->SW - 1) / g->SW : (g->W - ekw) / g->SW + 1;
    int th = (g->OH - 1) * g->SH + ekh - g->H, tw = (g->OW - 1) * g->SW + ekw - g->W;
    g->PT = g->same && th > 0 ? th / 2 : 0;
    g->PL = g->same && tw > 0 ? tw / 2 : 0;
}

/* direct depthwise: x (B, H, W, C), K (KH, KW, C, M) -> y (B, OH, OW, C*M), no bias */
static void dw_ref(const geom *g, const float *x, const float *K, float *y, int B) {
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++)
                for (int c = 0; c < g->C; c++)
                    for (int m = 0; m < g->M; m++) {
                        double s = 0;
                        for (int kh = 0; kh < g->KH; kh++)
                            for (int kw = 0; kw < g->KW; kw++) {
                                int ih = oh * g->SH - g->PT + kh * g->DH;
                                int iw = ow * g->SW - g->PL + kw * g->DW;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W)
                                    continue;
                                s += (double)x[((b * g->H + ih) * g->W + iw) * g->C + c] *
                                     K[((kh * g->KW + kw) * g->C + c) * g->M + m];
                            }
                        y[((b * g->OH + oh) * g->OW + ow) * g->C * g->M + c * g->M + m] = (float)s;
                    }
}

static void dw_case(geom g, bool separable, int F) {
    geom_out(&g);
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"filters\": %d, \"kernel_size\": [%d, %d], \"strides\": [%d, %d], "
             "\"dilation_rate\": [%d, %d], \"padding\": \"%s\", \"depth_multiplier\": %d, "
             "\"bias_initializer\": {\"class_name\": \"RandomNormal\", \"config\": "
             "{\"stddev\": 0.5}}}",
             F, g.KH, g.KW, g.SH, g.SW, g.DH, g.DW, g.same ? "same" : "valid", g.M);
    dpt_layer *l = NULL;
    const int B = 2, CM = g.C * g.M, n = separable ? F : CM;
    assert_ok(gc_make_layer(separable ? "SeparableConv2D" : "DepthwiseConv2D", cfg,
                            shp(3, g.H, g.W, g.C), &l));
    assert_true(l->out_shape.dim[0] == g.OH && l->out_shape.dim[1] == g.OW &&
                l->out_shape.dim[2] == n);
    gc_bind_params(l, 5);
    const char *names[4];
    dpt_shape shapes[4];
    int nw = dpt_layer_weights(l, names, shapes, 4);
    assert_int_equal(nw, separable ? 3 : 2);
    assert_string_equal(names[0], "depthwise_kernel");
    assert_true(shapes[0].dim[0] == g.KH && shapes[0].dim[3] == g.M);
    if (separable) {
        assert_string_equal(names[1], "pointwise_kernel");
        assert_true(shapes[1].dim[0] == 1 && shapes[1].dim[2] == CM && shapes[1].dim[3] == F);
    }
    int64_t nin = (int64_t)B * g.H * g.W * g.C, npix = (int64_t)B * g.OH * g.OW;
    float *x = malloc(sizeof(float) * (size_t)nin);
    float *t = malloc(sizeof(float) * (size_t)(npix * CM));
    float *y = malloc(sizeof(float) * (size_t)(npix * n));
    dpt_rng r;
    dpt_rng_init(&r, 3, 1);
    gc_fill_uniform(x, nin, -1, 1, &r);
    l->ops->forward(l, &infer_pass, x, y, B);
    dw_ref(&g, x, l->params, t, B);
    const float *P = l->params + (int64_t)g.KH * g.KW * CM;
    const float *bias = P + (separable ? (int64_t)CM * F : 0);
    double worst = 0;
    for (int64_t p = 0; p < npix; p++)
        for (int j = 0; j < n; j++) {
            double want = bias[j];
            if (separable)
                for (int k = 0; k < CM; k++)
                    want += (double)t[p * CM + k] * P[k * F + j];
            else
                want += t[p * CM + j];
            worst = fmax(worst, fabs(want - y[p * n + j]));
        }
    if (worst > 1e-5)
        fail_msg("%s forward differs from the direct loops by %g", l->ops->class_name, worst);
    free(x);
    free(t);
    free(y);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 7), l->ops->class_name);
    gc_free_layer(&l);
}

static void test_depthwise(void **state) {
    (void)state;
    dw_case(
        (geom){
            .H = 5, .W = 6, .C = 2, .M = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .DH = 1, .DW = 1},
        false, 0);
    dw_case((geom){.H = 6,
                   .W = 5,
                   .C = 3,
                   .M = 2,
                   .KH = 3,
                   .KW = 2,
                   .SH = 2,
                   .SW = 1,
                   .DH = 1,
                   .DW = 1,
                   .same = true},
            false, 0);
    dw_case((geom){.H = 7,
                   .W = 7,
                   .C = 2,
                   .M = 3,
                   .KH = 2,
                   .KW = 3,
                   .SH = 1,
                   .SW = 1,
                   .DH = 2,
                   .DW = 3,
                   .same = true},
            false, 0);
    dw_case(
        (geom){
            .H = 7, .W = 6, .C = 1, .M = 2, .KH = 3, .KW = 2, .SH = 1, .SW = 1, .DH = 2, .DW = 2},
        false, 0);
    /* the no-bias form: weights are the kernel alone */
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("DepthwiseConv2D", "{\"kernel_size\": 2, \"use_bias\": false}",
                            shp(3, 3, 3, 2), &l));
    assert_true(dpt_layer_n_params(l) == 8);
    gc_free_layer(&l);
    assert_status_msg(gc_make_layer("DepthwiseConv2D", "{}", shp(3, 3, 3, 2), &l), DPT_ERR_CONFIG,
                      "config.kernel_size: missing");
    assert_status_msg(gc_make_layer("DepthwiseConv2D",
                                    "{\"kernel_size\": 2, \"data_format\": \"channels_first\"}",
                                    shp(3, 3, 3, 2), &l),
                      DPT_ERR_CONFIG, "config.data_format: only \"channels_last\" is supported");
    assert_status_msg(gc_make_layer("DepthwiseConv2D",
                                    "{\"kernel_size\": 2, \"depth_multiplier\": 0}",
                                    shp(3, 3, 3, 2), &l),
                      DPT_ERR_CONFIG, "config.depth_multiplier: must be in [1,");
}

static void test_separable(void **state) {
    (void)state;
    dw_case(
        (geom){
            .H = 5, .W = 6, .C = 2, .M = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .DH = 1, .DW = 1},
        true, 3);
    dw_case((geom){.H = 6,
                   .W = 7,
                   .C = 3,
                   .M = 2,
                   .KH = 3,
                   .KW = 3,
                   .SH = 2,
                   .SW = 2,
                   .DH = 1,
                   .DW = 1,
                   .same = true},
            true, 4);
    dw_case(
        (geom){
            .H = 7, .W = 7, .C = 2, .M = 2, .KH = 2, .KW = 2, .SH = 1, .SW = 1, .DH = 2, .DW = 3},
        true, 2);
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("SeparableConv2D", "{\"kernel_size\": 2}", shp(3, 3, 3, 2), &l),
                      DPT_ERR_CONFIG, "config.filters: missing");
    /* many output rows: several chunks through the layer's buffers */
    assert_ok(gc_make_layer("SeparableConv2D",
                            "{\"filters\": 2, \"kernel_size\": 3, \"padding\": \"same\", "
                            "\"depth_multiplier\": 64}",
                            shp(3, 64, 128, 2), &l));
    gc_bind_params(l, 3);
    int64_t nin = 3 * l->in_size, nout = 3 * l->out_size;
    float *x = malloc(sizeof(float) * (size_t)nin), *y = malloc(sizeof(float) * (size_t)nout);
    float *dy = malloc(sizeof(float) * (size_t)nout), *dx = malloc(sizeof(float) * (size_t)nin);
    dpt_rng r;
    dpt_rng_init(&r, 3, 2);
    gc_fill_uniform(x, nin, -1, 1, &r);
    l->ops->forward(l, &infer_pass, x, y, 3);
    for (int64_t i = 0; i < nout; i++)
        dy[i] = 1.0f;
    memset(l->grads, 0, sizeof(float) * (size_t)dpt_layer_n_params(l));
    l->ops->backward(l, &infer_pass, x, y, dy, dx, 3);
    /* with dy = 1 and a linear layer, db[f] = the number of output pixels */
    int64_t nb = dpt_layer_n_params(l) - 2;
    assert_true(fabsf(l->grads[nb] - (float)(3 * 64 * 128)) < 1e-2f);
    bool finite = true;
    for (int64_t i = 0; i < nin; i++)
        finite = finite && isfinite(dx[i]);
    assert_true(finite);
    free(x);
    free(y);
    free(dy);
    free(dx);
    gc_free_layer(&l);
}

/* dilated Conv2D against the direct loop (a depthwise reference summed over channels) */
static void dil_case(int H, int W, int C, int F, int KH, int KW, int DH, int DW, bool same) {
    geom g = {.H = H,
              .W = W,
              .C = C,
              .M = 1,
              .KH = KH,
              .KW = KW,
              .SH = 1,
              .SW = 1,
              .DH = DH,
              .DW = DW,
              .same = same};
    geom_out(&g);
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"filters\": %d, \"kernel_size\": [%d, %d], \"dilation_rate\": [%d, %d], "
             "\"padding\": \"%s\"}",
             F, KH, KW, DH, DW, same ? "same" : "valid");
    dpt_layer *l = NULL;
    assert_ok(gc_make_layer("Conv2D", cfg, shp(3, H, W, C), &l));
    assert_true(l->out_shape.dim[0] == g.OH && l->out_shape.dim[1] == g.OW);
    gc_bind_params(l, 8);
    const int B = 2;
    int64_t nin = (int64_t)B * H * W * C, npix = (int64_t)B * g.OH * g.OW;
    float *x = malloc(sizeof(float) * (size_t)nin), *y = malloc(sizeof(float) * (size_t)(npix * F));
    float *t = malloc(sizeof(float) * (size_t)(npix * C)),
          *K1 = malloc(sizeof(float) * KH * KW * C);
    dpt_rng r;
    dpt_rng_init(&r, 3, 3);
    gc_fill_uniform(x, nin, -1, 1, &r);
    l->ops->forward(l, &infer_pass, x, y, B);
    double worst = 0;
    for (int f = 0; f < F; f++) {
        for (int k = 0; k < KH * KW * C; k++)
            K1[k] = l->params[k * F + f];
        dw_ref(&g, x, K1, t, B); /* per-channel taps of filter f */
        for (int64_t p = 0; p < npix; p++) {
            double s = 0;
            for (int c = 0; c < C; c++)
                s += t[p * C + c];
            worst = fmax(worst, fabs(s - y[p * F + f]));
        }
    }
    if (worst > 1e-5)
        fail_msg("dilated Conv2D differs from the direct loop by %g", worst);
    free(x);
    free(y);
    free(t);
    free(K1);
    gc_assert_ok(gc_check_layer(l, &train_pass, 2, 7), cfg);
    json_t *j = l->ops->to_json(l);
    json_t *d = json_object_get(j, "dilation_rate");
    assert_true(json_integer_value(json_array_get(d, 0)) == DH &&
                json_integer_value(json_array_get(d, 1)) == DW);
    json_decref(j);
    gc_free_layer(&l);
}

static void test_conv_dilated(void **state) {
    (void)state;
    dil_case(7, 8, 2, 3, 3, 3, 2, 2, false);
    dil_case(7, 8, 2, 3, 3, 2, 2, 3, true);
    dil_case(6, 9, 3, 2, 2, 3, 1, 2, true);
    dil_case(9, 9, 1, 2, 3, 3, 3, 1, false);
    dpt_layer *l = NULL;
    assert_status_msg(
        gc_make_layer("Conv2D", "{\"filters\": 2, \"kernel_size\": 3, \"dilation_rate\": 4}",
                      shp(3, 8, 8, 1), &l),
        DPT_ERR_CONFIG, "config: a dilated kernel height of 9 does not fit an input of 8");
}

/* ---- constraints ------------------------------------------------------------------------- */

static dpt_status con_from(const char *text, dpt_constraint *c) {
    json_t *j = gc_parse(text);
    dpt_json_ctx ctx = {.file = "t.json", .path = "model.config.layers[1].config"};
    dpt_status st = dpt_constraint_parse(j, "kernel_constraint", &ctx, c);
    json_decref(j);
    return st;
}

static void con_check(dpt_constraint *c, const dpt_shape *s) {
    dpt_json_ctx ctx = {.file = "t.json", .path = "p"};
    assert_ok(dpt_constraint_check(c, s, "kernel_constraint", &ctx));
}

/* the Keras formula in double over the axes of mask, for a tensor of rank <= 4 */
static void con_ref(dpt_con_kind kind, double minv, double maxv, double rate, unsigned mask,
                    const float *w, float *out, const dpt_shape *s) {
    int64_t n = dpt_shape_size(s), idx[4];
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i;
        for (int a = s->rank - 1; a >= 0; a--) {
            idx[a] = rem % s->dim[a];
            rem /= s->dim[a];
        }
        /* sum over all j that agree with i on the kept axes */
        double ss = 0;
        for (int64_t j = 0; j < n; j++) {
            int64_t rj = j;
            bool same = true;
            for (int a = s->rank - 1; a >= 0; a--) {
                if (!(mask >> a & 1u) && rj % s->dim[a] != idx[a])
                    same = false;
                rj /= s->dim[a];
            }
            if (same)
                ss += (double)w[j] * w[j];
        }
        double nrm = sqrt(ss), desired = 1.0;
        if (kind == DPT_CON_MAX_NORM)
            desired = fmin(nrm, maxv);
        else if (kind == DPT_CON_MIN_MAX_NORM)
            desired = rate * fmin(fmax(nrm, minv), maxv) + (1 - rate) * nrm;
        out[i] = (float)(w[i] * desired / (1e-7 + nrm));
    }
}

static void con_case(const char *text, dpt_shape s, unsigned mask, dpt_con_kind kind, double minv,
                     double maxv, double rate) {
    dpt_constraint c;
    assert_ok(con_from(text, &c));
    assert_int_equal(c.kind, kind);
    con_check(&c, &s);
    assert_int_equal(c.reduce_mask, mask);
    int64_t n = dpt_shape_size(&s);
    float *w = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
    dpt_rng r;
    dpt_rng_init(&r, 9, (uint32_t)mask);
    gc_fill_uniform(w, n, -1.5f, 1.5f, &r);
    w[0] = 0.0f;
    con_ref(kind, minv, maxv, rate, mask, w, want, &s);
    dpt_constraint_apply(&c, w, &s);
    for (int64_t i = 0; i < n; i++) {
        float ref = want[i];
        if (fabsf(w[i] - ref) > 1e-6f * fmaxf(1.0f, fabsf(ref)))
            fail_msg("%s: element %lld: %g, want %g", text, (long long)i, (double)w[i],
                     (double)ref);
    }
    /* to_json and back: the same constraint */
    json_t *j = dpt_constraint_to_json(&c);
    json_t *o = json_pack("{s:o}", "kernel_constraint", j);
    char *t2 = json_dumps(o, 0);
    dpt_constraint c2;
    assert_ok(con_from(t2, &c2));
    con_check(&c2, &s);
    assert_true(c2.kind == c.kind && c2.reduce_mask == c.reduce_mask &&
                c2.max_value == c.max_value && c2.min_value == c.min_value && c2.rate == c.rate);
    free(t2);
    json_decref(o);
    free(w);
    free(want);
}

static void test_constraint_formulas(void **state) {
    (void)state;
    dpt_shape k2 = {.rank = 2, .dim = {5, 3}}, k4 = {.rank = 4, .dim = {2, 3, 2, 3}};
    dpt_shape b1 = {.rank = 1, .dim = {6}};
    /* MaxNorm: defaults (2, axis 0), Keras 3 form, per-filter axes, negative axis */
    con_case("{\"kernel_constraint\": \"max_norm\"}", k2, 1u, DPT_CON_MAX_NORM, 0, 2, 1);
    con_case("{\"kernel_constraint\": {\"module\": \"keras.constraints\", \"class_name\": "
             "\"MaxNorm\", \"config\": {\"max_value\": 0.7, \"axis\": 0}, \"registered_name\": "
             "null}}",
             k2, 1u, DPT_CON_MAX_NORM, 0, 0.7, 1);
    con_case("{\"kernel_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": 1, "
             "\"axis\": [0, 1, 2]}}}",
             k4, 7u, DPT_CON_MAX_NORM, 0, 1, 1);
    con_case("{\"kernel_constraint\": {\"class_name\": \"maxnorm\", \"config\": "
             "{\"max_value\": 0.5, \"axis\": -1}}}",
             k2, 2u, DPT_CON_MAX_NORM, 0, 0.5, 1);
    con_case("{\"kernel_constraint\": \"max_norm\"}", b1, 1u, DPT_CON_MAX_NORM, 0, 2, 1);
    /* more columns than one block of the column pass */
    dpt_shape wide = {.rank = 2, .dim = {3, 600}};
    con_case("{\"kernel_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": "
             "0.8}}}",
             wide, 1u, DPT_CON_MAX_NORM, 0, 0.8, 1);
    /* UnitNorm */
    con_case("{\"kernel_constraint\": \"UnitNorm\"}", k2, 1u, DPT_CON_UNIT_NORM, 0, 1, 1);
    con_case("{\"kernel_constraint\": {\"class_name\": \"UnitNorm\", \"config\": {\"axis\": "
             "[1, 3]}}}",
             k4, 10u, DPT_CON_UNIT_NORM, 0, 1, 1);
    /* MinMaxNorm: rate 1 (projection) and 0.5 (half way) */
    con_case("{\"kernel_constraint\": {\"class_name\": \"MinMaxNorm\", \"config\": {\"min_value\": "
             "1.2, \"max_value\": 1.5}}}",
             k2, 1u, DPT_CON_MIN_MAX_NORM, 1.2, 1.5, 1);
    con_case("{\"kernel_constraint\": {\"class_name\": \"min_max_norm\", \"config\": "
             "{\"min_value\": 0.1, \"max_value\": 0.4, \"rate\": 0.5, \"axis\": [0, 2]}}}",
             k4, 5u, DPT_CON_MIN_MAX_NORM, 0.1, 0.4, 0.5);
    /* NonNeg: max(w, 0) */
    dpt_constraint c;
    assert_ok(
        con_from("{\"kernel_constraint\": {\"class_name\": \"NonNeg\", \"config\": {}}}", &c));
    con_check(&c, &k2);
    float w[4] = {-1, 0, 2, -0.5f};
    dpt_shape s4 = {.rank = 1, .dim = {4}};
    dpt_constraint_apply(&c, w, &s4);
    assert_true(w[0] == 0 && w[1] == 0 && w[2] == 2 && w[3] == 0);
    /* MaxNorm on a known column: (3, 4) has norm 5 -> scaled to 2 / (5 + 1e-7) */
    assert_ok(con_from("{\"kernel_constraint\": \"max_norm\"}", &c));
    dpt_shape col = {.rank = 2, .dim = {2, 1}};
    con_check(&c, &col);
    float v[2] = {3, 4};
    dpt_constraint_apply(&c, v, &col);
    assert_true(fabsf(v[0] - 1.2f) < 1e-6f && fabsf(v[1] - 1.6f) < 1e-6f);
    /* below the max: unchanged up to 1 / (1 + eps / n) */
    float v2[2] = {0.6f, 0.8f};
    dpt_constraint_apply(&c, v2, &col);
    assert_true(fabsf(v2[0] - 0.6f) < 1e-6f && fabsf(v2[1] - 0.8f) < 1e-6f);
}

static void test_constraint_errors(void **state) {
    (void)state;
    dpt_constraint c;
    assert_ok(con_from("{\"kernel_constraint\": null}", &c));
    assert_int_equal(c.kind, DPT_CON_NONE);
    assert_true(json_is_null(dpt_constraint_to_json(&c)));
    assert_status_msg(con_from("{\"kernel_constraint\": \"Constraint\"}", &c), DPT_ERR_CONFIG,
                      "t.json: model.config.layers[1].config.kernel_constraint: unknown "
                      "constraint \"Constraint\"");
    assert_status_msg(con_from("{\"kernel_constraint\": {\"class_name\": \"MaxNorm\", "
                               "\"config\": {\"max_value\": 2, \"rate\": 1}}}",
                               &c),
                      DPT_ERR_CONFIG, "kernel_constraint.config.rate: unknown key for MaxNorm");
    assert_status_msg(con_from("{\"kernel_constraint\": {\"class_name\": \"MaxNorm\", "
                               "\"config\": {\"max_value\": -2}}}",
                               &c),
                      DPT_ERR_CONFIG, "kernel_constraint.config.max_value: must be a number >= 0");
    assert_status_msg(con_from("{\"kernel_constraint\": {\"class_name\": \"UnitNorm\", "
                               "\"config\": {\"axis\": \"x\"}}}",
                               &c),
                      DPT_ERR_CONFIG,
                      "kernel_constraint.config.axis: must be an integer or a list");
    assert_status_msg(con_from("{\"kernel_constraint\": {\"class_name\": \"MinMaxNorm\", "
                               "\"config\": {\"min_value\": 2, \"max_value\": 1}}}",
                               &c),
                      DPT_ERR_CONFIG, "min_value: 2 is above max_value 1");
    assert_status_msg(con_from("{\"kernel_constraint\": 3}", &c), DPT_ERR_CONFIG,
                      "kernel_constraint: must be null, a name");
    assert_ok(con_from("{\"kernel_constraint\": {\"class_name\": \"UnitNorm\", \"config\": "
                       "{\"axis\": [0, 3]}}}",
                       &c));
    dpt_shape k2 = {.rank = 2, .dim = {5, 3}};
    dpt_json_ctx ctx = {.file = "t.json", .path = "p"};
    assert_status_msg(dpt_constraint_check(&c, &k2, "kernel_constraint", &ctx), DPT_ERR_CONFIG,
                      "t.json: p.kernel_constraint.config.axis: 3 is out of range or repeated");
    /* on layers: the key is named; Conv2D, DepthwiseConv2D and SeparableConv2D take theirs */
    dpt_layer *l = NULL;
    assert_status_msg(gc_make_layer("Conv2D",
                                    "{\"filters\": 2, \"kernel_size\": 2, \"bias_constraint\": "
                                    "\"sparse\"}",
                                    shp(3, 3, 3, 1), &l),
                      DPT_ERR_CONFIG,
                      "t.json: model.config.layers[3].config.bias_constraint: unknown constraint "
                      "\"sparse\"");
    assert_status_msg(
        gc_make_layer("SeparableConv2D",
                      "{\"filters\": 2, \"kernel_size\": 2, \"pointwise_constraint\": "
                      "\"x\"}",
                      shp(3, 3, 3, 1), &l),
        DPT_ERR_CONFIG, "config.pointwise_constraint: unknown constraint \"x\"");
    assert_status_msg(
        gc_make_layer("DepthwiseConv2D",
                      "{\"kernel_size\": 2, \"depthwise_constraint\": {\"class_name\":"
                      " \"MaxNorm\", \"config\": {\"axis\": 4}}}",
                      shp(3, 3, 3, 1), &l),
        DPT_ERR_CONFIG, "config.depthwise_constraint.config.axis: 4 is out of range");
    assert_null(l);
}

/* a model: Dense (MaxNorm kernel, NonNeg bias), a frozen Dense with MaxNorm, SeparableConv2D */
static void test_model_constraints(void **state) {
    (void)state;
    const char *layers =
        "[{\"class_name\": \"Reshape\", \"config\": {\"target_shape\": [3, 4, 2]}},"
        " {\"class_name\": \"SeparableConv2D\", \"config\": {\"filters\": 2, \"kernel_size\": 2, "
        "\"depthwise_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": "
        "0.1, \"axis\": [0, 1, 2]}}, \"pointwise_constraint\": \"non_neg\"}},"
        " {\"class_name\": \"Flatten\", \"config\": {}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 4, \"kernel_constraint\": "
        "{\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": 0.2}}, \"bias_constraint\": "
        "\"NonNeg\", \"bias_initializer\": {\"class_name\": \"Constant\", \"config\": {\"value\": "
        "-1}}}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 2, \"trainable\": false, "
        "\"kernel_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": "
        "0.01}}}}]";
    json_t *j = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "x.json"};
    dpt_model *m = NULL;
    dpt_shape in = {.rank = 1, .dim = {24}};
    assert_ok(dpt_model_create(j, &in, 4, 3, &ctx, &m));
    json_decref(j);
    assert_true(dpt_model_has_constraints(m));
    int64_t np = dpt_model_n_params(m);
    float *before = malloc(sizeof(float) * (size_t)np);
    memcpy(before, dpt_model_params(m), sizeof(float) * (size_t)np);
    dpt_model_apply_constraints(m);
    const float *w = dpt_model_params(m);
    /* SeparableConv2D: depthwise (2, 2, 2, 1): each of the 1 multipliers' (2, 2, 2) block has norm
     * <= 0.1; pointwise >= 0 */
    dpt_layer *sep = dpt_model_layer(m, 1);
    const float *dk = w + sep->param_offset;
    double ss = 0;
    for (int k = 0; k < 8; k++)
        ss += (double)dk[k] * dk[k];
    assert_true(sqrt(ss) <= 0.1 + 1e-6);
    for (int k = 0; k < 4; k++)
        assert_true(dk[8 + k] >= 0.0f);
    /* Dense 3: every column of the (12, 4) kernel has norm <= 0.2; bias -1 -> 0 */
    dpt_layer *d3 = dpt_model_layer(m, 3);
    const float *K = w + d3->param_offset;
    for (int o = 0; o < 4; o++) {
        double s = 0;
        for (int i = 0; i < 12; i++)
            s += (double)K[i * 4 + o] * K[i * 4 + o];
        assert_true(sqrt(s) <= 0.2 + 1e-6);
        assert_true(K[48 + o] == 0.0f);
    }
    /* the frozen layer is not constrained (Keras constrains trainable variables only) */
    dpt_layer *d4 = dpt_model_layer(m, 4);
    assert_memory_equal(w + d4->param_offset, before + d4->param_offset,
                        sizeof(float) * (size_t)(np - d4->param_offset));
    /* the Keras JSON carries the constraints back */
    json_t *lj = d3->ops->to_json(d3);
    json_t *kc = json_object_get(lj, "kernel_constraint");
    assert_string_equal(json_string_value(json_object_get(kc, "class_name")), "MaxNorm");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(lj, "bias_constraint"), "class_name")),
        "NonNeg");
    json_decref(lj);
    free(before);
    dpt_model_destroy(&m);
    /* BatchNormalization: gamma and beta, not the moving statistics */
    dpt_layer *bn = NULL;
    assert_ok(gc_make_layer("BatchNormalization",
                            "{\"gamma_constraint\": {\"class_name\": \"MaxNorm\", \"config\": "
                            "{\"max_value\": 1.0}}, \"beta_constraint\": \"non_neg\", "
                            "\"moving_mean_initializer\": {\"class_name\": \"Constant\", "
                            "\"config\": {\"value\": -3}}, \"beta_initializer\": {\"class_name\": "
                            "\"Constant\", \"config\": {\"value\": -1}}}",
                            shp(1, 4, 0, 0), &bn));
    assert_true(bn->has_constraint);
    gc_bind_params(bn, 1);
    bn->ops->constrain(bn);
    for (int c = 0; c < 4; c++) {
        assert_true(fabsf(bn->params[c] - 0.5f) < 1e-6f); /* ones: norm 2 -> max 1 */
        assert_true(bn->params[4 + c] == 0.0f);           /* beta -1 -> 0 */
        assert_true(bn->params[8 + c] == -3.0f);          /* moving mean untouched */
    }
    json_t *bj = bn->ops->to_json(bn);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(bj, "beta_constraint"), "class_name")),
        "NonNeg");
    json_decref(bj);
    gc_free_layer(&bn);
    /* no constraint anywhere: nothing to do */
    j = gc_parse("[{\"class_name\": \"Dense\", \"config\": {\"units\": 2}}]");
    assert_ok(dpt_model_create(j, &in, 4, 3, &ctx, &m));
    json_decref(j);
    assert_false(dpt_model_has_constraints(m));
    dpt_model_destroy(&m);
}

/* ---- activity regularization ------------------------------------------------------------ */

static void test_activity_regularization(void **state) {
    (void)state;
    dpt_layer *l = NULL;
    assert_ok(
        gc_make_layer("ActivityRegularization", "{\"l1\": 0.1, \"l2\": 0.5}", shp(1, 3, 0, 0), &l));
    float x[6] = {1, -2, 0, 0.5f, 3, -1}, y[6], dy[6] = {0}, dx[6];
    l->ops->forward(l, &infer_pass, x, y, 2);
    assert_memory_equal(x, y, sizeof x);
    /* l1 * 7.5 + l2 * 15.25 */
    assert_true(fabs(l->activity_loss - (0.1 * 7.5 + 0.5 * 15.25)) < 1e-9);
    l->ops->backward(l, &infer_pass, x, y, dy, dx, 2);
    for (int i = 0; i < 6; i++) {
        float sg = x[i] > 0 ? 1.0f : x[i] < 0 ? -1.0f : 0.0f;
        assert_true(fabsf(dx[i] - (0.1f * sg + 1.0f * x[i])) < 1e-6f);
    }
    json_t *j = l->ops->to_json(l);
    assert_true(json_real_value(json_object_get(j, "l2")) == 0.5);
    json_decref(j);
    gc_free_layer(&l);
    gc_both("ActivityRegularization", "{\"l1\": 0.03, \"l2\": 0.2}", shp(2, 3, 2, 0), "actreg");
    gc_both("Dense",
            "{\"units\": 3, \"activation\": \"tanh\", \"activity_regularizer\": {\"class_name\": "
            "\"L1L2\", \"config\": {\"l1\": 0.05, \"l2\": 0.3}}}",
            shp(1, 4, 0, 0), "dense activity");
    gc_both("Conv2D",
            "{\"filters\": 2, \"kernel_size\": 2, \"activation\": \"sigmoid\", "
            "\"activity_regularizer\": \"l2\"}",
            shp(3, 3, 3, 2), "conv activity");
    gc_both("SeparableConv2D",
            "{\"filters\": 2, \"kernel_size\": 2, \"activity_regularizer\": {\"class_name\": "
            "\"L1\", \"config\": {\"l1\": 0.1}}}",
            shp(3, 3, 4, 2), "separable activity");
    /* the model sums the layers' penalties; a Dense with one keeps its softmax (no fused head) */
    const char *layers =
        "[{\"class_name\": \"ActivityRegularization\", \"config\": {\"l2\": 0.5}},"
        " {\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"activation\": \"softmax\", "
        "\"activity_regularizer\": {\"class_name\": \"L1\", \"config\": {\"l1\": 0.25}}}}]";
    json_t *lj = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "x.json"};
    dpt_model *m = NULL;
    dpt_shape in = {.rank = 1, .dim = {3}};
    assert_ok(dpt_model_create(lj, &in, 4, 3, &ctx, &m));
    json_decref(lj);
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_CATEGORICAL_CROSSENTROPY),
                     DPT_ACT_LINEAR);
    const float *out = dpt_model_forward(m, &train_pass, x, 2);
    double sum_p = 0; /* softmax rows sum to 1: the L1 penalty of the output is 0.25 per sample */
    for (int i = 0; i < 6; i++)
        sum_p += out[i];
    assert_true(fabs(sum_p - 2.0) < 1e-5);
    assert_true(fabs(dpt_model_activity_loss(m) - (0.5 * 15.25 + 0.25 * 2.0)) < 1e-5);
    dpt_model_forward(m, &train_pass, x, 0);
    assert_true(dpt_model_activity_loss(m) == 0.0);
    dpt_model_destroy(&m);
    /* a kind that ignores the key (any Keras layer may carry one) is refused by the model */
    lj = gc_parse("[{\"class_name\": \"Flatten\", \"config\": {\"activity_regularizer\": "
                  "\"l2\"}}]");
    assert_status_msg(dpt_model_create(lj, &in, 4, 3, &ctx, &m), DPT_ERR_CONFIG,
                      "x.json: layers[0].config.activity_regularizer: not supported on Flatten");
    json_decref(lj);
    dpt_model_destroy(&m);
}

/* ---- channels_first --------------------------------------------------------------------- */

static dpt_model *cf_model(const char *fmt, dpt_shape in) {
    char layers[4096];
    snprintf(layers, sizeof layers,
             "[{\"class_name\": \"Conv2D\", \"config\": {\"filters\": 3, \"kernel_size\": 3, "
             "\"padding\": \"same\", \"activation\": \"gelu\", \"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"MaxPooling2D\", \"config\": {\"pool_size\": [2, 1], "
             "\"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"ZeroPadding2D\", \"config\": {\"padding\": [[1, 0], [0, 2]], "
             "\"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"DepthwiseConv2D\", \"config\": {\"kernel_size\": 2, "
             "\"depth_multiplier\": 2, \"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"SeparableConv2D\", \"config\": {\"filters\": 4, "
             "\"kernel_size\": 2, \"padding\": \"same\", \"activation\": \"relu\", "
             "\"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"UpSampling2D\", \"config\": {\"size\": [1, 2], \"data_format\": "
             "\"%1$s\"}},"
             " {\"class_name\": \"Cropping2D\", \"config\": {\"cropping\": [[0, 1], [1, 0]], "
             "\"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"AveragePooling2D\", \"config\": {\"pool_size\": 2, "
             "\"strides\": 1, \"data_format\": \"%1$s\"}},"
             " {\"class_name\": \"Conv2D\", \"config\": {\"filters\": 2, \"kernel_size\": 1, "
             "\"data_format\": \"%1$s\", \"kernel_constraint\": \"max_norm\"}},"
             " {\"class_name\": \"ZeroPadding2D\", \"config\": {\"padding\": 1, \"data_format\": "
             "\"%1$s\"}},"
             " {\"class_name\": \"GlobalMaxPooling2D\", \"config\": {\"data_format\": "
             "\"%1$s\", \"keepdims\": true}},"
             " {\"class_name\": \"Flatten\", \"config\": {}},"
             " {\"class_name\": \"Dense\", \"config\": {\"units\": 2}}]",
             fmt);
    json_t *j = gc_parse(layers);
    dpt_json_ctx ctx = {.file = "x.json"};
    dpt_model *m = NULL;
    assert_ok(dpt_model_create(j, &in, 4, 17, &ctx, &m));
    json_decref(j);
    return m;
}

/* a channels_first model = the channels_last one on transposed inputs: outputs and gradients */
static void test_channels_first(void **state) {
    (void)state;
    const int B = 3, C = 2, H = 6, W = 5;
    dpt_model *mf = cf_model("channels_first", (dpt_shape){.rank = 3, .dim = {C, H, W}});
    dpt_model *ml = cf_model("channels_last", (dpt_shape){.rank = 3, .dim = {H, W, C}});
    int64_t np = dpt_model_n_params(ml);
    assert_true(dpt_model_n_params(mf) == np);
    memcpy(dpt_model_params(mf), dpt_model_params(ml), sizeof(float) * (size_t)np);
    dpt_layer *c0 = dpt_model_layer(mf, 0);
    assert_string_equal(c0->name, "conv2d");
    assert_true(c0->out_shape.dim[0] == 3 && c0->out_shape.dim[1] == H);
    json_t *j = c0->ops->to_json(c0);
    assert_string_equal(json_string_value(json_object_get(j, "data_format")), "channels_first");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "conv2d");
    json_decref(j);
    float xf[B * C * H * W], xl[B * C * H * W];
    dpt_rng r;
    dpt_rng_init(&r, 2, 2);
    gc_fill_uniform(xf, B * C * H * W, -1, 1, &r);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < H * W; k++)
                xl[(b * H * W + k) * C + c] = xf[(b * C + c) * H * W + k];
    const float *yf = dpt_model_forward(mf, &train_pass, xf, B);
    const float *yl = dpt_model_forward(ml, &train_pass, xl, B);
    for (int i = 0; i < B * 2; i++)
        assert_true(fabsf(yf[i] - yl[i]) < 1e-5f);
    float d1[B * 2], d2[B * 2];
    for (int i = 0; i < B * 2; i++)
        d1[i] = d2[i] = 0.3f * (float)(i % 3) - 0.4f;
    dpt_model_zero_grads(mf);
    dpt_model_zero_grads(ml);
    dpt_model_backward(mf, &train_pass, d1, B);
    dpt_model_backward(ml, &train_pass, d2, B);
    const float *gf = dpt_model_grads(mf), *gl = dpt_model_grads(ml);
    double worst = 0, big = 0;
    for (int64_t i = 0; i < np; i++) {
        worst = fmax(worst, fabs((double)gf[i] - gl[i]));
        big = fmax(big, fabs((double)gl[i]));
    }
    if (worst > 1e-5 * fmax(1.0, big) || big == 0)
        fail_msg("channels_first gradients differ by %g (largest %g)", worst, big);
    assert_true(dpt_model_has_constraints(mf));
    dpt_model_apply_constraints(mf);
    dpt_model_apply_constraints(ml);
    assert_memory_equal(dpt_model_params(mf), dpt_model_params(ml), sizeof(float) * (size_t)np);
    dpt_model_destroy(&mf);
    dpt_model_destroy(&ml);
    /* the wrapper wants a (channels, height, width) input */
    j = gc_parse("[{\"class_name\": \"Conv2D\", \"config\": {\"filters\": 2, \"kernel_size\": "
                 "1, \"data_format\": \"channels_first\"}}]");
    dpt_json_ctx ctx = {.file = "x.json"};
    dpt_shape in2 = {.rank = 2, .dim = {4, 4}};
    assert_status_msg(dpt_model_create(j, &in2, 4, 1, &ctx, &mf), DPT_ERR_CONFIG,
                      "x.json: layers[0].config.data_format: \"channels_first\" needs an input of "
                      "shape (None, channels, height, width), got (None, 4, 4)");
    json_decref(j);
}

/* ---- a Keras 2 (tf.keras 2.4) model JSON with every new piece ------------------------------ */

static const char keras2_model[] =
    "{\"model\": {\"class_name\": \"Sequential\", \"config\": {\"name\": \"sequential\", "
    "\"layers\": ["
    "{\"class_name\": \"ZeroPadding2D\", \"config\": {\"name\": \"zero_padding2d\", \"trainable\": "
    "true, \"batch_input_shape\": [null, 8, 8, 1], \"dtype\": \"float32\", \"padding\": [[1, 1], "
    "[2, "
    "0]], \"data_format\": \"channels_last\"}},"
    "{\"class_name\": \"DepthwiseConv2D\", \"config\": {\"name\": \"depthwise_conv2d\", "
    "\"trainable\": true, \"dtype\": \"float32\", \"kernel_size\": [3, 3], \"strides\": [1, 1], "
    "\"padding\": \"valid\", \"data_format\": \"channels_last\", \"dilation_rate\": [1, 1], "
    "\"activation\": \"relu\", \"use_bias\": true, \"bias_initializer\": {\"class_name\": "
    "\"Zeros\", \"config\": {}}, \"bias_regularizer\": null, \"activity_regularizer\": null, "
    "\"bias_constraint\": null, \"depth_multiplier\": 2, \"depthwise_initializer\": "
    "{\"class_name\": "
    "\"GlorotUniform\", \"config\": {\"seed\": null}}, \"depthwise_regularizer\": null, "
    "\"depthwise_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": 2, "
    "\"axis\": 0}}}},"
    "{\"class_name\": \"SeparableConv2D\", \"config\": {\"name\": \"separable_conv2d\", "
    "\"trainable\": true, \"dtype\": \"float32\", \"filters\": 4, \"kernel_size\": [2, 2], "
    "\"strides\": [1, 1], \"padding\": \"same\", \"data_format\": \"channels_last\", "
    "\"dilation_rate\": [2, 2], \"groups\": 1, \"activation\": \"linear\", \"use_bias\": true, "
    "\"bias_initializer\": {\"class_name\": \"Zeros\", \"config\": {}}, \"bias_regularizer\": "
    "null, "
    "\"activity_regularizer\": {\"class_name\": \"L1L2\", \"config\": {\"l1\": 0.0, \"l2\": "
    "0.009999999776482582}}, \"bias_constraint\": null, \"depth_multiplier\": 1, "
    "\"depthwise_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}}, "
    "\"pointwise_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}}, "
    "\"depthwise_regularizer\": null, \"pointwise_regularizer\": {\"class_name\": \"L2\", "
    "\"config\": {\"l2\": 0.01}}, \"depthwise_constraint\": null, \"pointwise_constraint\": "
    "{\"class_name\": \"NonNeg\", \"config\": {}}}},"
    "{\"class_name\": \"UpSampling2D\", \"config\": {\"name\": \"up_sampling2d\", \"trainable\": "
    "true, \"dtype\": \"float32\", \"size\": [2, 2], \"data_format\": \"channels_last\", "
    "\"interpolation\": \"nearest\"}},"
    "{\"class_name\": \"Cropping2D\", \"config\": {\"name\": \"cropping2d\", \"trainable\": true, "
    "\"dtype\": \"float32\", \"cropping\": [[1, 1], [0, 2]], \"data_format\": \"channels_last\"}},"
    "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"conv2d\", \"trainable\": true, "
    "\"dtype\": \"float32\", \"filters\": 2, \"kernel_size\": [3, 3], \"strides\": [1, 1], "
    "\"padding\": \"valid\", \"data_format\": \"channels_last\", \"dilation_rate\": [2, 2], "
    "\"groups\": 1, \"activation\": \"relu\", \"use_bias\": true, \"kernel_initializer\": "
    "{\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}}, \"bias_initializer\": "
    "{\"class_name\": \"Zeros\", \"config\": {}}, \"kernel_regularizer\": null, "
    "\"bias_regularizer\": null, \"activity_regularizer\": null, \"kernel_constraint\": "
    "{\"class_name\": \"MinMaxNorm\", \"config\": {\"min_value\": 0.0, \"max_value\": 1.0, "
    "\"rate\": 1.0, \"axis\": [0, 1, 2]}}, \"bias_constraint\": null}},"
    "{\"class_name\": \"Flatten\", \"config\": {\"name\": \"flatten\", \"trainable\": true, "
    "\"dtype\": \"float32\", \"data_format\": \"channels_last\"}},"
    "{\"class_name\": \"ActivityRegularization\", \"config\": {\"name\": "
    "\"activity_regularization\", \"trainable\": true, \"dtype\": \"float32\", \"l1\": 0.0, "
    "\"l2\": 0.01}},"
    "{\"class_name\": \"Dense\", \"config\": {\"name\": \"dense\", \"trainable\": true, "
    "\"dtype\": \"float32\", \"units\": 1, \"activation\": \"sigmoid\", \"use_bias\": true, "
    "\"kernel_initializer\": {\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}}, "
    "\"bias_initializer\": {\"class_name\": \"Zeros\", \"config\": {}}, \"kernel_regularizer\": "
    "null, \"bias_regularizer\": null, \"activity_regularizer\": null, \"kernel_constraint\": "
    "{\"class_name\": \"UnitNorm\", \"config\": {\"axis\": 0}}, \"bias_constraint\": null}}]}, "
    "\"keras_version\": \"2.4.0\", \"backend\": \"tensorflow\"}, "
    "\"compile\": {\"loss\": \"binary_crossentropy\"}}";

static void test_keras2_json(void **state) {
    (void)state;
    dpt_config c;
    assert_ok(dpt_config_parse(keras2_model, strlen(keras2_model), "k2.json", &c));
    dpt_json_ctx ctx = {.file = "k2.json"};
    dpt_model *m = NULL;
    assert_ok(dpt_model_create(c.layers, &c.input_shape, 4, 1, &ctx, &m));
    assert_int_equal(dpt_model_n_layers(m), 9);
    /* (8, 8, 1) -> pad (10, 10, 1) -> dw (8, 8, 2) -> sep (8, 8, 4) -> up (16, 16, 4)
     * -> crop (14, 14, 4) -> dilated conv (10, 10, 2) -> 200 -> 1 */
    const dpt_shape *o = &dpt_model_layer(m, 5)->out_shape;
    assert_true(o->dim[0] == 10 && o->dim[1] == 10 && o->dim[2] == 2);
    assert_true(dpt_model_has_constraints(m) && dpt_model_has_regularizers(m));
    assert_string_equal(dpt_model_layer(m, 1)->name, "depthwise_conv2d");
    /* 8 * 8 * ... : dw 3*3*1*2 + 2, sep 2*2*2 + 2*4 + 4, conv 3*3*4*2 + 2, dense 200 + 1 */
    assert_true(dpt_model_n_params(m) == 20 + 20 + 74 + 201);
    /* the sigmoid head fuses (its Dense has no activity regularizer) */
    assert_int_equal(dpt_model_set_fused_head(m, DPT_LOSS_BINARY_CROSSENTROPY), DPT_ACT_SIGMOID);
    float x[2 * 64];
    for (int i = 0; i < 2 * 64; i++)
        x[i] = (float)(i % 7) * 0.1f;
    dpt_model_forward(m, &train_pass, x, 2);
    assert_true(dpt_model_activity_loss(m) > 0.0);
    dpt_model_destroy(&m);
    dpt_config_deinit(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pad_crop_up_values),
        cmocka_unit_test(test_pad_crop_up_gradients),
        cmocka_unit_test(test_depthwise),
        cmocka_unit_test(test_separable),
        cmocka_unit_test(test_conv_dilated),
        cmocka_unit_test(test_constraint_formulas),
        cmocka_unit_test(test_constraint_errors),
        cmocka_unit_test(test_model_constraints),
        cmocka_unit_test(test_activity_regularization),
        cmocka_unit_test(test_channels_first),
        cmocka_unit_test(test_keras2_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
