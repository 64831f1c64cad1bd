/* Tool calling in the chat formats: how tools and calls are written into a
 * prompt for templates that do not render them, the prefix that starts a
 * forced call, and the parser that finds calls in a model's output.
 *
 * Two call styles, picked by the chat format (chat_tools_style):
 *   HERMES  (ChatML: SmolLM2, Qwen; also Gemma, which has no format of its
 *           own): each call is a JSON object between tags,
 *             <tool_call>
 *             {"name": "get_weather", "arguments": {"city": "Paris"}}
 *             </tool_call>
 *           one or more, with any text around them.
 *   LLAMA3  the whole answer is one JSON object (or several separated by ';'
 *           or newlines), optionally after <|python_tag|>:
 *             {"name": "get_weather", "parameters": {"city": "Paris"}}
 * Both parsers accept "arguments" or "parameters", as an object or as a
 * string holding a JSON object.  A call that does not parse, names no known
 * tool or has arguments that are not an object is left in the text.
 *
 * JSON values are jansson's; tools are OpenAI tool objects
 * ({"type":"function","function":{"name","description","parameters"}}). */
#ifndef RYOT_TEMPLATE_TOOLS_H
#define RYOT_TEMPLATE_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ryot.h" /* ryot_chat_format */

typedef enum chat_tool_style { CHAT_TOOLS_HERMES, CHAT_TOOLS_LLAMA3 } chat_tool_style;

chat_tool_style chat_tools_style(ryot_chat_format f);

/* Messages (OpenAI-shaped JSON, as chat_apply_json takes them) rewritten for
 * a template that knows nothing of tools: a system block that lists the
 * tools and the call format (appended to a leading system message, else a
 * new first message), assistant tool_calls written into the content in the
 * style's call syntax, and tool results as user turns wrapped in
 * <tool_response> tags (HERMES) or "ipython" turns (LLAMA3).  tools NULL or
 * empty: no system block.  NULL when out of memory. */
json_t *chat_tools_inline(chat_tool_style s, const json_t *messages, const json_t *tools);

/* The text a forced call starts with, placed after the generation prompt:
 * for a named function the call up to its arguments
 * (`<tool_call>\n{"name": "f", "arguments": ` / `{"name": "f", "parameters": `),
 * for any function (name NULL) up to the name's first character.  malloc'd. */
char *chat_tools_prefix(chat_tool_style s, const char *name);

/* Streaming: how many leading bytes of text[0..len) are surely content, i.e.
 * come before anything that starts (or may, with more text, start) a call.
 * *opened is set when a call opener was found at the returned offset.
 * at_start: text begins the answer (LLAMA3 calls are whole answers: leading
 * whitespace is held back until the first other character shows). */
size_t chat_tools_content_prefix(chat_tool_style s, const char *text, size_t len, bool at_start, bool *opened);

typedef struct chat_tool_call {
    char *name;
    char *arguments; /* compact JSON object text */
} chat_tool_call;

typedef struct chat_tool_parse {
    char *content;   /* the text outside calls; trimmed when calls were found, then NULL when empty */
    size_t content_len;
    chat_tool_call *calls;
    int n_calls;
} chat_tool_parse;

/* Finds the calls in text[0..len).  Names must be those of tools (any name
 * when tools is NULL).  forced_name: text starts with
 * chat_tools_prefix(s, forced_name), so the arguments that follow it form a
 * call of that function even when the model did not close the call as the
 * style wants; what follows is parsed as usual.  Returns false only when out
 * of memory (*out then empty). */
bool chat_tools_parse(chat_tool_style s, const char *text, size_t len, const json_t *tools, const char *forced_name,
                      chat_tool_parse *out);
void chat_tools_parse_free(chat_tool_parse *p);

#endif
