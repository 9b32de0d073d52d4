/* `dptrain data synth | adding | fashion-mnist | csv | inspect`: dataset converters, run on rank 0
 * (the others wait for the agreed result). The conversion logic lives in src/data. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Finds "--name value" in argv; returns the value or NULL. Leaves unknown options to the caller. */
static const char *opt_value(int argc, char **argv, const char *name) {
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

/* Every "--x" in argv must be one of `known` (NULL-terminated) and have a value. */
static dpt_status check_opts(const char *cmd, int argc, char **argv, const char *const *known) {
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok = ok || !strcmp(argv[i], *k);
        if (!ok)
            return dpt_error_set(DPT_ERR_USAGE, "data %s: unknown option \"%s\"", cmd, argv[i]);
        if (i + 1 >= argc)
            return dpt_error_set(DPT_ERR_USAGE, "data %s: %s needs a value", cmd, argv[i]);
        i++;
    }
    return DPT_OK;
}

static dpt_status run_data(int argc, char **argv) {
    if (argc < 1)
        return dpt_error_set(
            DPT_ERR_USAGE, "data: missing subcommand (synth, adding, fashion-mnist, csv, inspect)");
    const char *sub = argv[0];
    argc--;
    argv++;
    dpt_status st;
    if (!strcmp(sub, "synth")) {
        static const char *const known[] = {"--out", "--samples", "--features", "--seed", NULL};
        if ((st = check_opts(sub, argc, argv, known)) != DPT_OK)
            return st;
        const char *out = opt_value(argc, argv, "--out");
        if (!out)
            return dpt_error_set(DPT_ERR_USAGE, "data synth: --out FILE.h5 is required");
        int64_t n = 1000, f = 20, seed = 0;
        const char *v;
        if ((v = opt_value(argc, argv, "--samples")) &&
            (st = dpt_cli_parse_i64("--samples", v, 1, (int64_t)1 << 40, &n)) != DPT_OK)
            return st;
        if ((v = opt_value(argc, argv, "--features")) &&
            (st = dpt_cli_parse_i64("--features", v, 1, (int64_t)1 << 24, &f)) != DPT_OK)
            return st;
        if ((v = opt_value(argc, argv, "--seed")) &&
            (st = dpt_cli_parse_i64("--seed", v, 0, UINT32_MAX, &seed)) != DPT_OK)
            return st;
        st = dpt_data_write_synth(out, n, f, (uint32_t)seed);
        if (st == DPT_OK)
            printf("wrote %s: /train x (%lld, %lld) float32, y (%lld) int32\n", out, (long long)n,
                   (long long)f, (long long)n);
        return st;
    }
    if (!strcmp(sub, "adding")) {
        static const char *const known[] = {"--out", "--samples", "--steps", "--seed", NULL};
        if ((st = check_opts(sub, argc, argv, known)) != DPT_OK)
            return st;
        const char *out = opt_value(argc, argv, "--out");
        if (!out)
            return dpt_error_set(DPT_ERR_USAGE, "data adding: --out FILE.h5 is required");
        int64_t n = 10000, steps = 100, seed = 0;
        const char *v;
        if ((v = opt_value(argc, argv, "--samples")) &&
            (st = dpt_cli_parse_i64("--samples", v, 1, UINT32_MAX, &n)) != DPT_OK)
            return st;
        if ((v = opt_value(argc, argv, "--steps")) &&
            (st = dpt_cli_parse_i64("--steps", v, 2, (int64_t)1 << 24, &steps)) != DPT_OK)
            return st;
        if ((v = opt_value(argc, argv, "--seed")) &&
            (st = dpt_cli_parse_i64("--seed", v, 0, UINT32_MAX, &seed)) != DPT_OK)
            return st;
        st = dpt_data_write_adding(out, n, steps, (uint32_t)seed);
        if (st == DPT_OK)
            printf("wrote %s: /train x (%lld, %lld, 2) float32, y (%lld, 1) float32; /test %lld "
                   "samples\n",
                   out, (long long)n, (long long)steps, (long long)n,
                   (long long)(n / 10 > 0 ? n / 10 : 1));
        return st;
    }
    if (!strcmp(sub, "fashion-mnist")) {
        static const char *const known[] = {"--out", "--from", NULL};
        if ((st = check_opts(sub, argc, argv, known)) != DPT_OK)
            return st;
        const char *out = opt_value(argc, argv, "--out");
        const char *from = opt_value(argc, argv, "--from");
        if (!out)
            return dpt_error_set(DPT_ERR_USAGE, "data fashion-mnist: --out FILE.h5 is required");
        if (!from)
            from = "/usr/share/datasets/fashion-mnist";
        st = dpt_data_write_fmnist(from, out);
        if (st == DPT_OK)
            printf("wrote %s: /train (60000), /test (10000)\n", out);
        return st;
    }
    if (!strcmp(sub, "csv")) {
        static const char *const known[] = {"--out", "--label", NULL};
        if (argc < 1 || argv[0][0] == '-')
            return dpt_error_set(DPT_ERR_USAGE, "data csv: missing FILE.csv");
        const char *csv = argv[0];
        if ((st = check_opts(sub, argc - 1, argv + 1, known)) != DPT_OK)
            return st;
        const char *out = opt_value(argc, argv, "--out");
        const char *label = opt_value(argc, argv, "--label");
        if (!out || !label)
            return dpt_error_set(DPT_ERR_USAGE,
                                 "data csv: --label COLUMN and --out FILE.h5 are required");
        st = dpt_data_write_csv(csv, label, out);
        if (st == DPT_OK)
            printf("wrote %s\n", out);
        return st;
    }
    if (!strcmp(sub, "inspect")) {
        if (argc < 1)
            return dpt_error_set(DPT_ERR_USAGE, "data inspect: missing FILE.h5");
        return dpt_data_inspect(argv[0], stdout);
    }
    return dpt_error_set(
        DPT_ERR_USAGE,
        "data: unknown subcommand \"%s\" (synth, adding, fashion-mnist, csv, inspect)", sub);
}

dpt_status dpt_cli_data(const dpt_comm *c, int argc, char **argv) {
    dpt_status st = DPT_OK;
    if (c->rank == 0) {
        st = run_data(argc, argv);
        fflush(stdout);
    }
    return dpt_comm_agree(c, st);
}
