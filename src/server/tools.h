/* Tool calling for the chat endpoint: the request's messages as the JSON the
 * chat template renders, the grammar of a forced call, and the tool calls of
 * a response.  The call formats themselves (what the prompt says, the forced
 * prefix, the output parser) are template/tools.h's: they belong to the chat
 * format, this module to the request. */
#ifndef RYOT_SERVER_TOOLS_H
#define RYOT_SERVER_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/error.h"
#include "grammar/grammar.h"
#include "server/request.h"
#include "template/tools.h"

/* msgs as OpenAI-shaped JSON for chat_apply_json: {"role", "content"
 * (null when NULL), "tool_calls": [{"id", "type": "function", "function":
 * {"name", "arguments"}}], "tool_call_id"}.  NULL when out of memory. */
json_t *srv_messages_json(const srv_message *msgs, int n);

/* Whether req renders and parses tools (tools given, tool_choice not "none"). */
bool srv_tools_active(const srv_request *req);

/* The forced-call prefix (chat_tools_prefix) for req: NULL when the choice
 * is "auto" or "none" (*nomem false), or out of memory (*nomem true). */
char *srv_tools_prefix(chat_tool_style s, const srv_request *req, bool *nomem);

/* The grammar text of what follows srv_tools_prefix in a forced call: the
 * arguments as the named function's parameters schema allows, then the
 * call's closing in style s; for "required" the name (one of the tools), the
 * arguments by that tool's schema and the closing, then (parallel tool
 * calls) any number of further calls.  Each tool's schema rules are renamed
 * t<i>-<rule>.  Fails when a schema is one grammar_schema_to_text rejects
 * (the message names tools[i].function.parameters in *param). */
ryot_status srv_tools_grammar_text(chat_tool_style s, const srv_request *req, char **text, char *param,
                                   size_t param_size, ryot_error *err);

/* The tool calls of one choice's output text[0..len) (for a forced call,
 * the prefix followed by what was generated): ids "call_<24 hex>", at most
 * one call unless req->parallel_tool_calls.  *content: the text outside the
 * calls (NULL when there are calls and nothing else; the text itself when
 * there are none).  false when out of memory. */
typedef struct srv_tool_result {
    srv_tool_call *calls;
    int n_calls;
    char *content;
    size_t content_len;
} srv_tool_result;
bool srv_tools_parse(chat_tool_style s, const srv_request *req, const char *text, size_t len, srv_tool_result *out);
void srv_tool_result_free(srv_tool_result *r);

#endif
