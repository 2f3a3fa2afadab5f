// The official openai SDK against webproxyd in front of the fake
// grok.com: what a real client sees of chat completions, streamed and
// not, with and without thinking.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { sleep, tokenFile } from '../integration/lib.mjs';
import { KEY, assertUsage, assertWellFormed, drain, sdk, up } from './helpers.mjs';

const T = { timeout: 20000 };
const user = (content) => [{ role: 'user', content }];

describe('chat completions through the SDK (show_thinking on)', () => {
	let d, ai;
	before(async () => {
		d = await up({ server: { api_keys: [KEY] },
			tokens: tokenFile(['tok-chat-1', 'tok-chat-2', 'tok-chat-3'],
				['tok-chat-super-1']) });
		ai = sdk(d);
	});
	after(() => d?.stop());

	test('non-streaming: choices[0].message.content and usage', T, async () => {
		const c = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: user('Say hello') });
		assert.equal(c.object, 'chat.completion');
		assert.match(c.id, /^chatcmpl-/);
		assert.equal(c.model, 'grok-4.1');
		assert.ok(Number.isInteger(c.created));
		assert.equal(c.choices.length, 1);
		const ch = c.choices[0];
		assert.equal(ch.index, 0);
		assert.equal(ch.finish_reason, 'stop');
		assert.equal(ch.message.role, 'assistant');
		assert.equal(typeof ch.message.content, 'string');
		assert.ok(ch.message.content.length > 0);
		assert.doesNotMatch(ch.message.content, /<think>/);
		assertUsage(c.usage);
	});

	test('streaming: the chunks add up to the non-stream content', T, async () => {
		for (const prompt of ['Say hello', 'Tell me a lot [tokens=300]']) {
			const c = await ai.chat.completions.create({ model: 'grok-4.1',
				messages: user(prompt) });
			const r = await drain(await ai.chat.completions.create({
				model: 'grok-4.1', messages: user(prompt), stream: true }));
			assertWellFormed(r, 'grok-4.1');
			assert.equal(r.content, c.choices[0].message.content, prompt);
			assert.equal(r.finish, 'stop');
			assert.deepEqual(r.usage, c.usage);
			// Usage rides on the chunk with finish_reason; without
			// include_usage there is no usage-only chunk.
			const last = r.chunks.at(-1);
			assert.equal(last.choices[0].finish_reason, 'stop');
			assertUsage(last.usage);
			assert.ok(r.chunks.every((k) => k.choices.length === 1));
		}
		const long = await drain(await ai.chat.completions.create({
			model: 'grok-4.1', messages: user('x [tokens=300]'), stream: true }));
		assert.ok(long.chunks.length >= 100,
			`only ${long.chunks.length} chunks: not streamed`);
	});

	test('stream_options.include_usage: the SDK sees the usage chunk', T, async () => {
		const r = await drain(await ai.chat.completions.create({
			model: 'grok-4.1', messages: user('Say hello'), stream: true,
			stream_options: { include_usage: true } }));
		assertWellFormed(r, 'grok-4.1');
		const last = r.chunks.at(-1);
		assert.deepEqual(last.choices, [], 'the last chunk is usage-only');
		assertUsage(last.usage);
		assert.equal(r.chunks.filter((k) => k.choices.length === 0).length, 1);
		const fin = r.chunks.find((k) => k.choices[0]?.finish_reason);
		assert.deepEqual(fin.usage, last.usage);
	});

	test('Grok tags are filtered the same way streamed and not', T, async () => {
		const prompt = 'Show me code [tags]';
		const c = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: user(prompt) });
		const r = await drain(await ai.chat.completions.create({
			model: 'grok-4.1', messages: user(prompt), stream: true }));
		assertWellFormed(r, 'grok-4.1');
		assert.equal(r.content, c.choices[0].message.content);
		assert.doesNotMatch(r.content, /xaiartifact|grok:render|tool_usage_card/);
		assert.ok(r.content.trim().length > 0);
	});

	test('thinking on: <think>…</think> leads the content, both ways', T, async () => {
		const m = 'grok-4.1-thinking';
		const c = await ai.chat.completions.create({ model: m,
			messages: user('Why is the sky blue?') });
		const text = c.choices[0].message.content;
		assert.match(text, /^<think>[\s\S]+<\/think>\n?\S/);
		assert.equal(text.match(/<think>/g).length, 1);
		assert.equal(text.match(/<\/think>/g).length, 1);
		assert.equal(c.choices[0].message.reasoning_content, undefined);
		assert.equal(c.model, m);
		const r = await drain(await ai.chat.completions.create({ model: m,
			messages: user('Why is the sky blue?'), stream: true,
			stream_options: { include_usage: true } }));
		assertWellFormed(r, m);
		assert.equal(r.content, text);
		assert.equal(r.reasoning, '');
	});

	test('reasoning_format "reasoning_content": the SDK passes the field through', T, async () => {
		const m = 'grok-4.1-thinking';
		const body = { model: m, messages: user('Why is the sky blue?'),
			reasoning_format: 'reasoning_content' };
		const c = await ai.chat.completions.create(body);
		const msg = c.choices[0].message;
		assert.equal(typeof msg.reasoning_content, 'string');
		assert.ok(msg.reasoning_content.trim().length > 0);
		assert.doesNotMatch(msg.content, /<\/?think>/);
		assert.ok(msg.content.trim().length > 0);
		const r = await drain(await ai.chat.completions.create({ ...body,
			stream: true }));
		assertWellFormed(r, m);
		assert.equal(r.reasoning, msg.reasoning_content);
		assert.equal(r.content, msg.content);
		// Reasoning first, then the answer, never in one delta.
		const kinds = r.chunks.filter((k) => k.choices.length === 1).map((k) => {
			const dl = k.choices[0].delta;
			assert.ok(!(dl.content && dl.reasoning_content), JSON.stringify(dl));
			return dl.reasoning_content ? 'r' : dl.content ? 'c' : '-';
		}).join('').replace(/-/g, '');
		assert.match(kinds, /^r+c+$/);
		// The same reasoning and answer as the <think> form.
		const tags = (await ai.chat.completions.create({ model: m,
			messages: user('Why is the sky blue?') })).choices[0].message.content;
		assert.equal(tags.replace(/^<think>[\s\S]*<\/think>\n?/, ''), msg.content);
	});

	test('reasoning_format "hidden" per request: no reasoning at all', T, async () => {
		const m = 'grok-4.1-thinking';
		const body = { model: m, messages: user('Why is the sky blue?'),
			reasoning_format: 'hidden' };
		const c = await ai.chat.completions.create(body);
		assert.doesNotMatch(c.choices[0].message.content, /<\/?think>/);
		assert.equal(c.choices[0].message.reasoning_content, undefined);
		const r = await drain(await ai.chat.completions.create({ ...body,
			stream: true }));
		assertWellFormed(r, m);
		assert.equal(r.content, c.choices[0].message.content);
		assert.equal(r.reasoning, '');
	});

	test('chat.completions.stream() helper and finalChatCompletion()', T, async () => {
		const prompt = 'Tell me something [tokens=50]';
		const plain = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: user(prompt) });
		const s = ai.chat.completions.stream({ model: 'grok-4.1',
			messages: user(prompt), stream_options: { include_usage: true } });
		let deltas = '';
		let doneText = null;
		s.on('content', (delta) => { deltas += delta; });
		s.on('content.done', ({ content }) => { doneText = content; });
		const fin = await s.finalChatCompletion();
		assert.equal(fin.object, 'chat.completion');
		assert.match(fin.id, /^chatcmpl-/);
		assert.equal(fin.model, 'grok-4.1');
		assert.equal(fin.choices.length, 1);
		assert.equal(fin.choices[0].finish_reason, 'stop');
		assert.equal(fin.choices[0].message.role, 'assistant');
		assert.equal(fin.choices[0].message.content, plain.choices[0].message.content);
		assert.equal(deltas, plain.choices[0].message.content);
		assert.equal(doneText, plain.choices[0].message.content);
		assertUsage(fin.usage);
		assert.deepEqual(fin.usage, plain.usage);
		assert.equal(await s.finalContent(), plain.choices[0].message.content);
	});

	test('stream() helper with thinking keeps the <think> block', T, async () => {
		const s = ai.chat.completions.stream({ model: 'grok-4.1-thinking',
			messages: user('Why is the sky blue?') });
		const fin = await s.finalChatCompletion();
		assert.match(fin.choices[0].message.content, /^<think>[\s\S]+<\/think>/);
		assert.equal(fin.choices[0].finish_reason, 'stop');
	});

	test('max_tokens cuts the answer with finish_reason "length"', T, async () => {
		const body = { model: 'grok-4.1', max_tokens: 5,
			messages: user('Go on [tokens=200]') };
		const c = await ai.chat.completions.create(body);
		assert.equal(c.choices[0].finish_reason, 'length');
		const full = await ai.chat.completions.create({ ...body,
			max_tokens: undefined });
		assert.ok(c.choices[0].message.content.length <
			full.choices[0].message.content.length);
		const r = await drain(await ai.chat.completions.create({ ...body,
			stream: true }));
		assertWellFormed(r, 'grok-4.1');
		assert.equal(r.finish, 'length');
		assert.equal(r.content, c.choices[0].message.content);
	});

	test('a conversation the SDK sends arrives flattened, old <think> dropped', T, async () => {
		const c = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: [
				{ role: 'system', content: 'Be brief.' },
				{ role: 'user', content: 'First question' },
				{ role: 'assistant', content: '<think>secret plan</think>First answer' },
				{ role: 'user', content: [{ type: 'text', text: 'Second question [echo]' }] },
			] });
		const text = c.choices[0].message.content;
		for (const s of ['Be brief.', 'First question', 'First answer',
			'Second question'])
			assert.ok(text.includes(s), `${s} missing from ${text}`);
		assert.doesNotMatch(text, /secret plan|<think>/);
	});

	test('eight streams at once each get their own whole answer', T, async () => {
		const prompts = Array.from({ length: 8 }, (_, i) =>
			`Parallel ${i} [tokens=${40 + i * 10}]`);
		const want = await Promise.all(prompts.map((p) =>
			ai.chat.completions.create({ model: 'grok-4.1', messages: user(p) })));
		const got = await Promise.all(prompts.map(async (p) => drain(
			await ai.chat.completions.create({ model: 'grok-4.1',
				messages: user(p), stream: true }))));
		const ids = new Set();
		got.forEach((r, i) => {
			assertWellFormed(r, 'grok-4.1');
			assert.equal(r.content, want[i].choices[0].message.content, prompts[i]);
			ids.add([...r.ids][0]);
		});
		assert.equal(ids.size, 8, 'stream ids are not unique');
	});

	test('leaving a stream early ends the upstream transfer', T, async () => {
		const stream = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: user('Slowly [tokens=400][interval=20]'), stream: true });
		let n = 0;
		for await (const c of stream) {
			assert.equal(c.object, 'chat.completion.chunk');
			if (++n === 3) {
				// The fake has seconds of answer left to send.
				assert.equal((await d.fake.stats()).open_streams, 1);
				break; // the SDK aborts the request
			}
		}
		const t0 = Date.now();
		let st;
		while (Date.now() - t0 < 5000) {
			st = await d.fake.stats();
			if (st.open_streams === 0) break;
			await sleep(50);
		}
		assert.equal(st.open_streams, 0, JSON.stringify(st));
		const c = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: user('Still there?') });
		assert.equal(c.choices[0].finish_reason, 'stop');
	});
});

describe('thinking off (grok.show_thinking: false)', () => {
	let d, ai;
	before(async () => {
		d = await up({ server: { api_keys: [KEY] },
			grok: { show_thinking: false },
			tokens: tokenFile(['tok-nothink-1', 'tok-nothink-2']) });
		ai = sdk(d);
	});
	after(() => d?.stop());

	test('a thinking model answers without its reasoning, both ways', T, async () => {
		const m = 'grok-4.1-thinking';
		const c = await ai.chat.completions.create({ model: m,
			messages: user('Why is the sky blue?') });
		const msg = c.choices[0].message;
		assert.doesNotMatch(msg.content, /<\/?think>|Thinking about your request/);
		assert.equal(msg.reasoning_content, undefined);
		assert.ok(msg.content.trim().length > 0);
		assertUsage(c.usage);
		const r = await drain(await ai.chat.completions.create({ model: m,
			messages: user('Why is the sky blue?'), stream: true,
			stream_options: { include_usage: true } }));
		assertWellFormed(r, m);
		assert.equal(r.content, msg.content);
		assert.equal(r.reasoning, '');
	});

	test('a non-thinking model is unchanged', T, async () => {
		const c = await ai.chat.completions.create({ model: 'grok-4.1',
			messages: user('Say hello') });
		const r = await drain(await ai.chat.completions.create({
			model: 'grok-4.1', messages: user('Say hello'), stream: true }));
		assert.equal(r.content, c.choices[0].message.content);
		assert.doesNotMatch(r.content, /<think>/);
	});
});
