/* Library-internal access to what include/ryot.h keeps opaque (the server's
 * core drives the engine and tokenizer directly). */
#ifndef RYOT_ENGINE_API_INTERNAL_H
#define RYOT_ENGINE_API_INTERNAL_H

#include "model/model.h"
#include "ryot.h"

const model *ryot_model_internal(const ryot_model *m);

#endif
