/* Which OpenBLAS kernel the layers' GEMMs run on, and a better one when OpenBLAS fell back to a
 * generic kernel on a CPU with AVX2 or AVX-512: Debian's OpenBLAS 0.3.21 takes Sapphire/Emerald
 * Rapids Xeons for a "Prescott" and runs sgemm 4.5x slower there (25 instead of 114 GFLOP/s per
 * core). OpenBLAS reads OPENBLAS_CORETYPE when the library loads, so the fix is an environment
 * variable before start-up: the CLI re-executes itself with it (src/cli/main.c). */
#include <cblas.h>
#include <string.h>

#include "dptrain/nn.h"

const char *dpt_blas_coretype_advice(const char *core, bool avx512, bool avx2) {
    static const char *const generic[] = {
        "Prescott",   "Core2",     "Penryn", "Dunnington", "Nehalem", "Atom",    "Katmai",
        "Coppermine", "Northwood", "Banias", "Barcelona",  "generic", "unknown", NULL};
    bool is_generic = core == NULL;
    for (int i = 0; core && generic[i] && !is_generic; i++)
        is_generic = !strcmp(core, generic[i]);
    if (!is_generic)
        return NULL;
    return avx512 ? "SkylakeX" : avx2 ? "Haswell" : NULL;
}

const char *dpt_blas_corename(void) { return openblas_get_corename(); }

const char *dpt_blas_better_coretype(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return dpt_blas_coretype_advice(dpt_blas_corename(), avx512, avx2);
#else
    return NULL;
#endif
}
