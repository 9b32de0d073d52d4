/* libFuzzer target: dpt_config_parse on arbitrary bytes (as read from a config file). Must return
 * DPT_OK or DPT_ERR_CONFIG (DPT_ERR_NOMEM only for a real allocation failure), never crash, and
 * leave a message naming the file. On success the parsed config is released. Not here: building
 * the model from the layers (sizes from the input would make the fuzzer allocate without bound).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/config.h"
#include "dptrain/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the CLI hands the parser a NUL-terminated copy of the file (dpt_read_file) */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    dpt_config cfg;
    dpt_error_clear();
    dpt_status st = dpt_config_parse(text, size, "fuzz.json", &cfg);
    if (st == DPT_OK) {
        dpt_config_deinit(&cfg);
    } else {
        if (st != DPT_ERR_CONFIG && st != DPT_ERR_NOMEM) {
            fprintf(stderr, "unexpected status %d: %s\n", (int)st, dpt_error_message());
            abort();
        }
        if (!strstr(dpt_error_message(), "fuzz.json")) {
            fprintf(stderr, "message does not name the file: %s\n", dpt_error_message());
            abort();
        }
    }
    free(text);
    return 0;
}
