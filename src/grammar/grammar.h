/* Grammar-constrained generation: grammars, JSON schemas, token masks.
 *
 * Three layers, each usable alone:
 *
 *   grammar   a context-free grammar over Unicode code points, parsed from a
 *             GBNF-like text (grammar_parse) or compiled from a JSON schema
 *             (grammar_from_schema, which writes that text and parses it).
 *             Immutable once built; may be shared by several matchers and
 *             threads.
 *   vocab     the model's token byte strings in a byte trie (preorder array
 *             with subtree skips), built once per model; immutable.
 *   matcher   one generation's position in the grammar: a set of parse stacks
 *             (a pushdown automaton state; several stacks where the grammar is
 *             ambiguous) plus a pending partial UTF-8 sequence.  States are
 *             interned and their byte transitions memoized, so the matcher is
 *             a lazily built DFA over bytes; grammar_mask walks the vocab trie
 *             along it, dropping a subtree at its first rejected byte, and
 *             caches the mask per state.  Single-threaded.
 *
 * Grammar text (one rule per `name ::= body`; a body runs until the next
 * `name ::=`, so it may span lines):
 *
 *   root ::= "{" ws pair ("," ws pair)* "}"     the start rule is `root`
 *   a | b        alternatives            a b       sequence
 *   ( ... )      group                   x? x* x+  optional, repetitions
 *   x{m} x{m,} x{m,n}  counted repetition (counts up to 10000)
 *   "text"       literal: escapes \n \r \t \\ \" \' \xHH \uHHHH \UHHHHHHHH
 *   [a-z_]  [^"\\]  character class: ranges, negation, the same escapes
 *   .            any code point
 *   name         rule reference (names: letters, digits, '-', '_')
 *   # ...        comment to the end of the line
 * Literals and classes are UTF-8 aware.  Left recursion (direct, or through
 * rules that can match nothing) is an error, as are undefined and duplicate
 * rules and a root that derives no finite string; syntax errors give
 * line:column.  Alternatives that can never finish (they refer to a rule
 * with no finite derivation) are never entered, so a matcher's every live
 * state can still reach a complete sentence.
 *
 * JSON schema support (grammar_from_schema): type (one or a list; "object",
 * "array", "string", "number", "integer", "boolean", "null"), properties
 * (emitted in the schema's order), required (the other properties are
 * optional), additionalProperties (no undeclared properties are generated
 * when properties are given; a schema value constrains the values of an
 * object without properties), items, prefixItems, minItems, maxItems, enum,
 * const, minLength, maxLength, pattern (a regex subset: literals, ., classes,
 * groups, |, ? * + {m,n}, ^ and $ at the ends; always anchored), format
 * (date, time, date-time, uuid, email, ipv4), minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum (exact for integers; for numbers exact
 * when the bounds are integers, else rounded inward to the next integer, so
 * every output is in range but not every in-range number can be produced;
 * numbers with bounds are written without an exponent), anyOf, oneOf (as
 * anyOf), allOf with one member, $ref to "#", "#/$defs/..." or
 * "#/definitions/..." (recursion allowed).  Annotations (title, description,
 * default, examples, $schema, $id, $comment, strict) are ignored; other
 * keywords that would constrain the output are rejected as unsupported, so a
 * compiled schema never generates output that fails it.  Whitespace between
 * tokens is up to 20 of space, tab, newline. */
#ifndef RYOT_GRAMMAR_H
#define RYOT_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/error.h"

typedef struct grammar grammar;
typedef struct grammar_vocab grammar_vocab;
typedef struct grammar_matcher grammar_matcher;

/* Parses grammar text (need not be NUL-terminated).  Errors
 * (RYOT_ERR_INVALID) read "grammar line L:C: what". */
ryot_status grammar_parse(const char *text, size_t len, grammar **out, ryot_error *err);

/* Compiles a JSON schema.  Errors name the schema path, e.g.
 * "schema.properties.age.minimum: must be a number" (RYOT_ERR_INVALID), or
 * "...: unsupported keyword" (RYOT_ERR_UNSUPPORTED). */
ryot_status grammar_from_schema(const json_t *schema, grammar **out, ryot_error *err);
/* The grammar text a schema compiles to (malloc'd), for debugging and tests. */
ryot_status grammar_schema_to_text(const json_t *schema, char **text, ryot_error *err);
/* Any JSON object: response_format {"type": "json_object"}. */
ryot_status grammar_json_object(grammar **out, ryot_error *err);

/* Grammars are refcounted: every constructor returns one reference,
 * grammar_ref adds one (returning g), grammar_free drops one and frees at
 * zero.  Thread-safe (atomic), so jobs may hold a grammar past the thread
 * that compiled it. */
grammar *grammar_ref(const grammar *g);
void grammar_free(grammar *g);

/* A random string of g's language (tests, benchmarks): alternatives chosen
 * uniformly until the derivation is max_depth rules deep, then the shortest
 * ones.  malloc'd, NUL-terminated; NULL when out of memory. */
char *grammar_generate(const grammar *g, uint64_t seed, int max_depth, size_t *len);

/* The vocab: token i's bytes are bytes[i][0..len[i]) (copied).  A token with
 * no bytes (len 0, e.g. a control token the caller leaves out) is never
 * allowed, except the end-of-generation ids eog[0..n_eog), which are allowed
 * exactly when the grammar can be complete. */
ryot_status grammar_vocab_new(const char *const *bytes, const size_t *len, int32_t n, const int32_t *eog, int n_eog,
                              grammar_vocab **out, ryot_error *err);
/* The vocab of a model's tokenizer: each token's bytes as the streaming
 * detokenizer emits them (tokenizer_token_bytes); control, unknown and
 * unused tokens have none; the end-of-generation ids are
 * tokenizer_is_eog's. */
struct tokenizer;
ryot_status grammar_vocab_from_tokenizer(const struct tokenizer *tok, grammar_vocab **out, ryot_error *err);
void grammar_vocab_free(grammar_vocab *v);
int32_t grammar_vocab_size(const grammar_vocab *v);

/* A matcher at the start of g (g and v must outlive it). */
ryot_status grammar_matcher_new(const grammar *g, const grammar_vocab *v, grammar_matcher **out, ryot_error *err);
void grammar_matcher_free(grammar_matcher *m);

/* The tokens allowed next: bit i of bits[i / 32] (bits has
 * (n_vocab + 31) / 32 words).  After an end-of-generation token nothing is
 * allowed.  Fails only when out of memory. */
ryot_status grammar_mask(grammar_matcher *m, uint32_t *bits);
/* Sets logits[i] = -INFINITY for every token i of logits[0..n) whose bit is
 * clear in bits (a grammar_mask result). */
void grammar_mask_apply(const uint32_t *bits, float *logits, int32_t n);
/* Advances by token id; false (state unchanged) when the grammar rejects it.
 * An end-of-generation id is accepted only when the grammar can be complete,
 * and ends the matcher. */
bool grammar_matcher_accept_token(grammar_matcher *m, int32_t id);
/* Advances by raw bytes; false (state unchanged) when rejected. */
bool grammar_matcher_accept_bytes(grammar_matcher *m, const char *s, size_t n);
/* Whether the bytes would be accepted, without advancing. */
bool grammar_matcher_accepts_bytes(grammar_matcher *m, const char *s, size_t n);
/* Whether the text so far is a complete sentence of the grammar. */
bool grammar_matcher_is_complete(const grammar_matcher *m);
/* Whether no token but end-of-generation can follow (complete, and nothing
 * may be appended): the caller may stop without sampling. */
bool grammar_matcher_is_finished(grammar_matcher *m);

typedef struct grammar_stats {
    uint64_t masks;      /* grammar_mask calls */
    uint64_t cache_hits; /* of those, answered from the mask cache */
    uint64_t states;     /* DFA states created (over all flushes) */
    uint64_t flushes;    /* DFA rebuilds after reaching the state bound */
} grammar_stats;
void grammar_matcher_stats(const grammar_matcher *m, grammar_stats *out);

#endif
