/* Unit tests of src/core: Philox-4x32-10 known-answer vectors, the dpt_rng stream (determinism,
 * range and uniformity of dpt_rng_below), checked allocation and multiplication, the assertion
 * hook, status names, and the JSON getters' messages (they name the file and the JSON path).
 * No MPI. The nn-specific helpers (shapes, activations) are tested in test_nn.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

/* ---- Philox -----------------------------------------------------------------------------------
 */

static void check_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                         uint32_t k1, uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3) {
    dpt_u32x4 c = {{c0, c1, c2, c3}};
    dpt_u32x4 r = dpt_philox4x32_10(c, k0, k1);
    assert_int_equal(r.v[0], e0);
    assert_int_equal(r.v[1], e1);
    assert_int_equal(r.v[2], e2);
    assert_int_equal(r.v[3], e3);
}

/* Random123's kat_vectors for philox4x32_10 */
static void test_philox_kat(void **state) {
    (void)state;
    check_philox(0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
    check_philox(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
                 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
    check_philox(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u,
                 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

static void test_u32_to_unit(void **state) {
    (void)state;
    assert_true(dpt_u32_to_unit(0) == 0.0f);
    assert_true(dpt_u32_to_unit(0xffffffffu) < 1.0f);
    assert_true(dpt_u32_to_unit(0x80000000u) == 0.5f);
    assert_true(dpt_u32_to_unit(0x000000ffu) == 0.0f); /* only the top 24 bits count */
}

/* ---- dpt_rng ----------------------------------------------------------------------------------
 */

static void test_rng_deterministic(void **state) {
    (void)state;
    dpt_rng a, b, c, d;
    dpt_rng_init(&a, 42, 3);
    dpt_rng_init(&b, 42, 3);
    dpt_rng_init(&c, 42, 4);
    dpt_rng_init(&d, 43, 3);
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = dpt_rng_u32(&a);
        assert_int_equal(x, dpt_rng_u32(&b));
        same_c += x == dpt_rng_u32(&c);
        same_d += x == dpt_rng_u32(&d);
    }
    assert_true(same_c < 3);
    assert_true(same_d < 3);
    /* uniform floats stay in [0, 1) */
    for (int i = 0; i < 100000; i++) {
        float u = dpt_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
    }
}

static void test_rng_below(void **state) {
    (void)state;
    dpt_rng r;
    dpt_rng_init(&r, 7, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(dpt_rng_below(&r, 1), 0);
    uint64_t big = (UINT64_C(1) << 63) + 12345;
    for (int i = 0; i < 1000; i++)
        assert_true(dpt_rng_below(&r, big) < big);
    /* chi-square over 10 bins, 100000 draws: df 9, P(chi2 > 33.7) = 1e-4 */
    enum { BINS = 10, N = 100000 };
    int64_t count[BINS] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t v = dpt_rng_below(&r, BINS);
        assert_true(v < BINS);
        count[v]++;
    }
    double chi2 = 0.0, e = (double)N / BINS;
    for (int k = 0; k < BINS; k++)
        chi2 += ((double)count[k] - e) * ((double)count[k] - e) / e;
    assert_true(chi2 < 33.7);
    /* a bound that is not a power of two and large: the top half must be reached about half
     * the time (a modulo bias of 1/3 would show up here) */
    uint64_t b3 = UINT64_MAX / 3 * 2;
    int64_t top = 0;
    for (int i = 0; i < N; i++)
        top += dpt_rng_below(&r, b3) >= b3 / 2;
    assert_true(fabs((double)top / N - 0.5) < 0.01);
}

/* ---- allocation and arithmetic ------------------------------------------------------------------
 */

static void test_alloc(void **state) {
    (void)state;
    float *p = NULL;
    assert_ok(dpt_alloc(1000 * sizeof(float), "test buffer", (void **)&p));
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(p[i] == 0.0f);
    dpt_free(p);
    void *z = NULL;
    assert_ok(dpt_alloc(0, "empty", &z));
    assert_non_null(z);
    dpt_free(z);
    void *q = (void *)&p;
    assert_status_msg(dpt_alloc((size_t)1 << 50, "absurd buffer", &q), DPT_ERR_NOMEM,
                      "absurd buffer");
    assert_null(q);
    assert_status_msg(dpt_alloc(SIZE_MAX, "huge", &q), DPT_ERR_NOMEM, "too large");
}

static void test_mul_i64(void **state) {
    (void)state;
    int64_t r = 0;
    assert_ok(dpt_mul_i64(1 << 20, 1 << 20, "x", &r));
    assert_true(r == (int64_t)1 << 40);
    assert_status_msg(dpt_mul_i64(INT64_MAX, 2, "weights", &r), DPT_ERR_NOMEM, "weights");
    assert_status_msg(dpt_mul_i64((int64_t)1 << 32, (int64_t)1 << 32, "grid", &r), DPT_ERR_NOMEM,
                      "overflows");
    assert_status_msg(dpt_mul_i64(-1, 5, "neg", &r), DPT_ERR_NOMEM, "neg");
    assert_ok(dpt_mul_i64(0, INT64_MAX, "zero", &r));
    assert_true(r == 0);
}

static jmp_buf g_jmp;
static int g_abort_code;
static void jump_hook(int code) {
    g_abort_code = code;
    longjmp(g_jmp, 1);
}

static void test_assert_hook(void **state) {
    (void)state;
    volatile int reached = 0;
    dpt_set_abort_hook(jump_hook);
    dpt_set_log_rank(3, 4);
    if (setjmp(g_jmp) == 0) {
        DPT_ASSERT(1 + 1 == 2);
        reached = 1;
        DPT_ASSERT(1 + 1 == 3); /* prints "[rank 3/4] ...: assertion failed" and calls the hook */
        reached = 2;
    }
    dpt_set_abort_hook(NULL);
    dpt_set_log_rank(0, 1);
    assert_int_equal(reached, 1);
    assert_int_equal(g_abort_code, DPT_ERR_INTERNAL);
}

static void test_status(void **state) {
    (void)state;
    assert_int_equal(dpt_error_set(DPT_ERR_DATA, "f.h5: /x: %s", "bad"), DPT_ERR_DATA);
    assert_string_equal(dpt_error_message(), "f.h5: /x: bad");
    dpt_error_clear();
    assert_string_equal(dpt_error_message(), "");
    assert_string_equal(dpt_status_name(DPT_ERR_CONFIG), "config error");
    assert_string_equal(dpt_status_name(DPT_OK), "ok");
    assert_non_null(dpt_status_name((dpt_status)999));
    assert_string_equal(dpt_status_name(DPT_ERR_BUSY), "run directory busy");
    /* context added around the current message, passed as an argument */
    dpt_error_set(DPT_ERR_CONFIG, "inner: %s", "why");
    dpt_error_set(DPT_ERR_CONFIG, "x.json: layer 2 (bn): %s", dpt_error_message());
    assert_string_equal(dpt_error_message(), "x.json: layer 2 (bn): inner: why");
}

/* ---- JSON getters
 * --------------------------------------------------------------------------------- */

static json_t *parse(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void test_json_get_int(void **state) {
    (void)state;
    dpt_json_ctx ctx = {.file = "examples/a.json", .path = "model.config.layers[2].config"};
    json_t *o =
        parse("{\"units\": 64, \"f\": 3.0, \"g\": 3.5, \"s\": \"x\", \"z\": 0, \"n\": null}");
    int64_t v = -1;
    assert_ok(dpt_json_get_int(o, "units", &ctx, 1, 1, 1000, &v));
    assert_true(v == 64);
    assert_ok(dpt_json_get_int(o, "f", &ctx, 1, 1, 1000, &v)); /* 3.0 is an integer */
    assert_true(v == 3);
    assert_ok(dpt_json_get_int(o, "missing", &ctx, 17, 1, 1000, &v));
    assert_true(v == 17);
    assert_ok(dpt_json_get_int(o, "n", &ctx, 18, 1, 1000, &v)); /* null = default */
    assert_true(v == 18);
    assert_status_msg(dpt_json_get_int(o, "g", &ctx, 1, 1, 1000, &v), DPT_ERR_CONFIG,
                      "examples/a.json: model.config.layers[2].config.g: must be an integer");
    assert_status_msg(dpt_json_get_int(o, "s", &ctx, 1, 1, 1000, &v), DPT_ERR_CONFIG,
                      "model.config.layers[2].config.s: must be an integer, got a string");
    assert_status_msg(dpt_json_get_int(o, "z", &ctx, 1, 1, 1000, &v), DPT_ERR_CONFIG,
                      "examples/a.json: model.config.layers[2].config.z: must be in [1, 1000], "
                      "got 0");
    /* an empty path gives "<file>: <key>" */
    dpt_json_ctx top = {.file = "c.json"};
    assert_status_msg(dpt_json_get_int(o, "z", &top, 1, 1, 10, &v), DPT_ERR_CONFIG,
                      "c.json: z: must be in");
    json_decref(o);
}

static void test_json_get_num_bool_str(void **state) {
    (void)state;
    dpt_json_ctx ctx = {.file = "examples/a.json", .path = "model.config.layers[2].config"};
    json_t *o = parse("{\"rate\": 1.5, \"r1\": 1, \"ok\": 0.25, \"b\": 1, \"t\": true, \"s\": 5, "
                      "\"name\": \"d\"}");
    double d = -1;
    assert_ok(dpt_json_get_num(o, "ok", &ctx, 0, 0, 1, true, &d));
    assert_true(d == 0.25);
    assert_status_msg(dpt_json_get_num(o, "rate", &ctx, 0, 0, 1, true, &d), DPT_ERR_CONFIG,
                      "examples/a.json: model.config.layers[2].config.rate: must be in [0, 1), "
                      "got 1.5");
    assert_status_msg(dpt_json_get_num(o, "r1", &ctx, 0, 0, 1, true, &d), DPT_ERR_CONFIG,
                      "must be in [0, 1), got 1");
    assert_ok(dpt_json_get_num(o, "r1", &ctx, 0, 0, 1, false, &d)); /* closed interval */
    assert_status_msg(dpt_json_get_num(o, "name", &ctx, 0, 0, 1, false, &d), DPT_ERR_CONFIG,
                      "config.name: must be a number, got a string");
    bool b = false;
    assert_ok(dpt_json_get_bool(o, "t", &ctx, false, &b));
    assert_true(b);
    assert_ok(dpt_json_get_bool(o, "missing", &ctx, true, &b));
    assert_true(b);
    assert_status_msg(dpt_json_get_bool(o, "b", &ctx, false, &b), DPT_ERR_CONFIG,
                      "config.b: must be true or false, got an integer");
    const char *s = NULL;
    assert_ok(dpt_json_get_str(o, "name", &ctx, NULL, &s));
    assert_string_equal(s, "d");
    assert_ok(dpt_json_get_str(o, "missing", &ctx, "dflt", &s));
    assert_string_equal(s, "dflt");
    assert_status_msg(dpt_json_get_str(o, "s", &ctx, NULL, &s), DPT_ERR_CONFIG,
                      "examples/a.json: model.config.layers[2].config.s: must be a string, got "
                      "an integer");
    json_decref(o);
}

static void test_json_require_null_and_act(void **state) {
    (void)state;
    dpt_json_ctx ctx = {.file = "m.json", .path = "model.config.layers[0].config"};
    json_t *o =
        parse("{\"kernel_regularizer\": {\"class_name\": \"L2\"}, \"bias_regularizer\": "
              "null, \"a1\": \"relu\", \"a2\": {\"class_name\": \"softmax\"}, \"a3\": "
              "{\"module\": \"keras.activations\", \"class_name\": \"function\", \"config\": "
              "\"tanh\"}, \"a4\": \"swishy\", \"a5\": 3}");
    assert_ok(dpt_json_require_null(o, "bias_regularizer", &ctx));
    assert_ok(dpt_json_require_null(o, "missing", &ctx));
    assert_status_msg(dpt_json_require_null(o, "kernel_regularizer", &ctx), DPT_ERR_CONFIG,
                      "m.json: model.config.layers[0].config.kernel_regularizer: not supported "
                      "yet (must be null)");
    dpt_act a = DPT_ACT_LINEAR;
    assert_ok(dpt_json_get_act(o, "a1", &ctx, DPT_ACT_LINEAR, &a));
    assert_int_equal(a, DPT_ACT_RELU);
    assert_ok(dpt_json_get_act(o, "a2", &ctx, DPT_ACT_LINEAR, &a));
    assert_int_equal(a, DPT_ACT_SOFTMAX);
    assert_ok(dpt_json_get_act(o, "a3", &ctx, DPT_ACT_LINEAR, &a));
    assert_int_equal(a, DPT_ACT_TANH);
    assert_ok(dpt_json_get_act(o, "missing", &ctx, DPT_ACT_SIGMOID, &a));
    assert_int_equal(a, DPT_ACT_SIGMOID);
    assert_status_msg(dpt_json_get_act(o, "a4", &ctx, DPT_ACT_LINEAR, &a), DPT_ERR_CONFIG,
                      "m.json: model.config.layers[0].config.a4: unknown activation \"swishy\"");
    assert_status_msg(dpt_json_get_act(o, "a5", &ctx, DPT_ACT_LINEAR, &a), DPT_ERR_CONFIG,
                      "config.a5: must be an activation name, got an integer");
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_u32_to_unit),
        cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_rng_below),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_mul_i64),
        cmocka_unit_test(test_assert_hook),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_json_get_int),
        cmocka_unit_test(test_json_get_num_bool_str),
        cmocka_unit_test(test_json_require_null_and_act),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
