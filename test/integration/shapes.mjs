// What the chat tests share: the fake's answers as a client should see
// them, and checkers for the exact OpenAI shapes (DESIGN.md §6).
import assert from 'node:assert/strict';

import { sseEvents } from './lib.mjs';

export const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// The fake's default answer (fg_default_toks), joined.
export const ANSWER = "Hello! I'm Grok, built by xAI. The sky looks blue because air " +
	'molecules scatter short (blue) wavelengths of sunlight far more than long ' +
	'ones \u2014 this is called *Rayleigh scattering*.\n\nAt sunset, light ' +
	"crosses more air, so reds dominate. Today it's 21\u00b0C and \"sunny\" " +
	'\u{1f324}\ufe0f Anything else?';

// The [tags] answer as the fake sends it (fg_tags_toks, joined) ...
export const TAGS_RAW = 'Here is the code you asked for:\n\n' +
	'<xaiartifact artifact_id="8d5e2a4c-0000-4000-8000-000000000001" ' +
	'artifact_version_id="v1" title="hello.py" contentType="text/python">' +
	'print("hello")\n</xaiartifact>\n\nAccording to the docs' +
	'<grok:render type="render_inline_citation"><argument name="citation_id">1' +
	'</argument></grok:render> it works. I searched' +
	'<xai:tool_usage_card><xai:tool_usage_card_id>' +
	'9b2f4c1e-0000-4000-8000-000000000002</xai:tool_usage_card_id>' +
	'<xai:tool_name>web_search</xai:tool_name><xai:tool_args><![CDATA[' +
	'{"query":"hello world python"}]]></xai:tool_args></xai:tool_usage_card>' +
	' first. Split:<xaiartifact artifact_id="8d5e2a4c-0000-4000-8000-000000000003" ' +
	'title="notes.txt" contentType="text/plain">inner text</xaiartifact> then' +
	'<grok:render type="render_inline_citation"><argument name="citation_id">2' +
	'</argument></grok:render> and<xai:tool_usage_card><xai:tool_name>web_search' +
	'</xai:tool_name></xai:tool_usage_card> done.';
// ... and with the default filtered_tags (all three) applied.
export const TAGS_FILTERED = 'Here is the code you asked for:\n\n\n\nAccording to the docs' +
	' it works. I searched first. Split: then and done.';

export const user = (content, extra = {}) =>
	({ messages: [{ role: 'user', content }], ...extra });

// Every invariant of an OpenAI stream (DESIGN.md §6); returns what it
// carried: { id, content, reasoning, finish, usage, chunks }.
export function parseStream(r, model, { includeUsage = false } = {}) {
	assert.equal(r.status, 200, r.body);
	assert.match(r.headers['content-type'], /^text\/event-stream/);
	assert.equal(r.headers['cache-control'], 'no-cache, no-transform');
	assert.equal(r.headers['x-accel-buffering'], 'no');
	assert.ok(r.body.endsWith('data: [DONE]\n\n'), `no [DONE] at the end:\n${r.body.slice(-300)}`);
	const ev = sseEvents(r.body);
	assert.equal(ev.filter((e) => e === '[DONE]').length, 1, 'one [DONE]');
	const chunks = ev.slice(0, -1);
	assert.ok(chunks.length >= 2, r.body);
	for (const c of chunks) {
		assert.equal(c.error, undefined, `error event: ${JSON.stringify(c)}`);
		assert.equal(c.object, 'chat.completion.chunk');
		assert.equal(c.model, model);
		assert.equal(typeof c.created, 'number');
		assert.ok(Array.isArray(c.choices));
	}
	const id = chunks[0].id;
	assert.match(id, /^chatcmpl-[A-Za-z0-9]+$/);
	assert.ok(chunks.every((c) => c.id === id), 'one id per stream');
	const withChoice = chunks.filter((c) => c.choices.length > 0);
	const usageOnly = chunks.filter((c) => c.choices.length === 0);
	for (const c of withChoice) {
		assert.equal(c.choices.length, 1);
		assert.equal(c.choices[0].index, 0);
	}
	assert.equal(withChoice[0].choices[0].delta.role, 'assistant', 'role in the first delta');
	assert.ok(withChoice.slice(1).every((c) => !('role' in c.choices[0].delta)),
		'role only in the first delta');
	const last = withChoice.at(-1);
	const finish = last.choices[0].finish_reason;
	assert.ok(finish === 'stop' || finish === 'length', `finish_reason ${finish}`);
	assert.ok(withChoice.slice(0, -1).every((c) => c.choices[0].finish_reason === null &&
		!('usage' in c)), 'finish_reason and usage only on the last choice chunk');
	const usage = last.usage;
	assert.ok(usage, 'usage on the chunk that carries finish_reason');
	for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])
		assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `usage.${k}`);
	assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
	if (includeUsage) {
		assert.equal(usageOnly.length, 1, 'one usage-only chunk with include_usage');
		assert.equal(chunks.at(-1), usageOnly[0], 'the usage-only chunk comes last');
		assert.deepEqual(usageOnly[0].usage, usage);
	} else {
		assert.equal(usageOnly.length, 0, 'no usage-only chunk without include_usage');
	}
	const content = withChoice.map((c) => c.choices[0].delta.content ?? '').join('');
	const hasReasoning = withChoice.some((c) => 'reasoning_content' in c.choices[0].delta);
	const reasoning = withChoice.map((c) => c.choices[0].delta.reasoning_content ?? '').join('');
	return { id, content, reasoning: hasReasoning ? reasoning : undefined, finish, usage, chunks };
}

// The same for a chat.completion object.
export function parseCompletion(r, model) {
	assert.equal(r.status, 200, r.body);
	assert.match(r.headers['content-type'], /^application\/json/);
	const j = r.json;
	assert.ok(j, r.body);
	assert.match(j.id, /^chatcmpl-[A-Za-z0-9]+$/);
	assert.equal(j.object, 'chat.completion');
	assert.equal(j.model, model);
	assert.equal(typeof j.created, 'number');
	assert.equal(j.choices.length, 1);
	const ch = j.choices[0];
	assert.equal(ch.index, 0);
	assert.equal(ch.message.role, 'assistant');
	assert.equal(typeof ch.message.content, 'string');
	assert.ok(ch.finish_reason === 'stop' || ch.finish_reason === 'length');
	for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])
		assert.ok(Number.isInteger(j.usage[k]) && j.usage[k] >= 0, `usage.${k}`);
	assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
	return { id: j.id, content: ch.message.content, reasoning: ch.message.reasoning_content,
		finish: ch.finish_reason, usage: j.usage };
}

// The OpenAI error envelope with the status (and code); returns the error.
export function assertError(r, status, code) {
	assert.equal(r.status, status, r.body);
	assert.match(r.headers['content-type'], /^application\/json/, r.body);
	const e = r.json?.error;
	assert.ok(e, `no error envelope: ${r.body}`);
	assert.equal(typeof e.message, 'string');
	assert.ok(e.message.length > 20, `a message a person can act on: ${e.message}`);
	assert.equal(typeof e.type, 'string');
	assert.ok('param' in e, r.body);
	if (code) assert.equal(e.code, code, r.body);
	return e;
}
