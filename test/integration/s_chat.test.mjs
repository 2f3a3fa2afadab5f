// Chat answers against the fake grok.com (DESIGN.md §5 and §6): the
// payload, headers and cookie each model sends upstream, the flattening of
// messages, the exact OpenAI shapes of streamed chunks and completions,
// thinking and reasoning_content, search links, filtered_tags, max_tokens,
// and 400s for a client's wrong types. Faults and token state are in
// f_faults.test.mjs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { chat, startWithFake, tokenFile } from './lib.mjs';
import { ANSWER, TAGS_FILTERED, TAGS_RAW, UUID4, parseCompletion, parseStream,
	user } from './shapes.mjs';

const UA_DEFAULT = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 ' +
	'(KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36';

// The seed's text models (reference §3.3, shared/cfg.c): upstream name,
// mode, whether the fake thinks for it, and the pool.
const MODELS = {
	'grok-3-fast': { name: 'grok-3', mode: 'MODEL_MODE_FAST', thinks: false },
	'grok-4.1': { name: 'grok-4-1-non-thinking-w-tool', mode: 'MODEL_MODE_GROK_4_1', thinks: false },
	'grok-4.1-thinking': { name: 'grok-4-1-thinking-1108b', mode: 'MODEL_MODE_AUTO', thinks: true },
	'grok-4-fast': { name: 'grok-4-mini-thinking-tahoe', mode: 'MODEL_MODE_GROK_4_MINI_THINKING', thinks: true },
	'grok-4-fast-expert': { name: 'grok-4-mini-thinking-tahoe', mode: 'MODEL_MODE_EXPERT', thinks: true },
	'grok-4-expert': { name: 'grok-4', mode: 'MODEL_MODE_EXPERT', thinks: true },
	'grok-4-heavy': { name: 'grok-4-heavy', mode: 'MODEL_MODE_HEAVY', thinks: true, superOnly: true },
};

// Ask in both modes; returns [stream result, non-stream result].
async function both(d, model, body, opts) {
	const s = parseStream(await chat(d, { model, stream: true, ...body }), model, opts);
	const n = parseCompletion(await chat(d, { model, stream: false, ...body }), model);
	return [s, n];
}

// The chat requests the fake received since the last reset.
async function chats(fake) {
	return fake.requests('?path=/rest/app-chat/conversations/new');
}

function splitThink(content) {
	assert.ok(content.startsWith('<think>\n'), `no <think> at the start: ${content.slice(0, 80)}`);
	const end = content.indexOf('\n</think>\n');
	assert.ok(end > 0, 'no </think>');
	return { think: content.slice(8, end), answer: content.slice(end + 10) };
}

function assertStatsigDynamic(v, prefix) {
	assert.match(v, /^[A-Za-z0-9+/]+={0,2}$/, `x-statsig-id not base64: ${v}`);
	assert.equal(v.length % 4, 0);
	const text = Buffer.from(v, 'base64').toString('utf8');
	assert.ok(text.startsWith(`${prefix}TypeError: Cannot read properties of `), text);
}

describe('one daemon, every text model', () => {
	let d;
	before(async () => {
		d = await startWithFake({ workers: 1,
			tokens: tokenFile(['tok-normal-1'], ['tok-super-1']) }, ['-q', '1000000', '-H', '1000']);
	});
	after(() => d.stop());

	for (const [model, m] of Object.entries(MODELS)) {
		test(`${model}: stream and non-stream, payload ${m.name} / ${m.mode}`, async () => {
			await d.fake.reset();
			const [s, n] = await both(d, model, user('Why is the sky blue?'));
			for (const r of [s, n]) {
				if (m.thinks) {
					const { think, answer } = splitThink(r.content);
					assert.match(think, /Thinking about your request/);
					assert.equal(answer, ANSWER);
				} else {
					assert.equal(r.content, ANSWER);
				}
				assert.equal(r.finish, 'stop');
			}
			assert.equal(s.content, n.content, 'non-stream content = the stream\'s');
			assert.notEqual(s.id, n.id, 'a new id per answer');
			const recs = await chats(d.fake);
			assert.equal(recs.length, 2);
			const tok = m.superOnly ? 'tok-super-1' : 'tok-normal-1';
			for (const rec of recs) {
				assert.equal(rec.status, 200);
				assert.equal(rec.method, 'POST');
				assert.equal(rec.body.modelName, m.name);
				assert.equal(rec.body.modelMode, m.mode);
				assert.deepEqual(rec.body.responseMetadata,
					{ requestModelDetails: { modelId: m.name } });
				assert.equal(rec.body.message, 'Why is the sky blue?');
				assert.equal(rec.body.temporary, false);
				assert.equal(rec.token, tok, 'the pool\'s token');
				assert.equal(rec.cookie, `sso-rw=${tok}; sso=${tok}`);
				assert.equal(rec.user_agent, UA_DEFAULT);
				assert.equal(rec.content_type, 'application/json');
				assert.equal(rec.headers.origin, d.fake.url);
				assertStatsigDynamic(rec.statsig, 'e:');
				assert.match(rec.request_id, UUID4);
				assert.equal(rec.proxy, null);
			}
			assert.notEqual(recs[0].request_id, recs[1].request_id);
			assert.notEqual(recs[0].statsig, recs[1].statsig, 'a fresh statsig per request');
		});
	}

	test('the OpenAI stream shape; include_usage adds one usage-only chunk', async () => {
		const r = await chat(d, { model: 'grok-4.1', stream: true,
			stream_options: { include_usage: true }, ...user('hi') });
		const s = parseStream(r, 'grok-4.1', { includeUsage: true });
		assert.equal(s.content, ANSWER);
		assert.ok(s.usage.prompt_tokens >= 1 && s.usage.completion_tokens >= ANSWER.length / 8,
			JSON.stringify(s.usage));
		// Without it (or with false): usage still on the finish chunk, no extra.
		for (const so of [undefined, { include_usage: false }]) {
			const r2 = await chat(d, { model: 'grok-4.1', stream: true, stream_options: so,
				...user('hi') });
			const s2 = parseStream(r2, 'grok-4.1');
			assert.deepEqual(s2.usage, s.usage, 'the same answer counts the same');
		}
	});

	test('non-stream usage and content match the stream\'s for the same answer', async () => {
		const [s, n] = await both(d, 'grok-4.1-thinking', user('[tags] show me'));
		assert.equal(n.content, s.content);
		assert.deepEqual(n.usage, s.usage);
	});

	test('show_thinking (default): reasoning in <think>, search results as links in it', async () => {
		const [s] = await both(d, 'grok-4.1-thinking', user('Why is the sky blue?'));
		const { think, answer } = splitThink(s.content);
		assert.equal(answer, ANSWER);
		assert.equal(s.reasoning, undefined, 'no reasoning_content with think_tags');
		assert.match(think, /The user asks why the sky is blue\. Let me search the web first\./);
		assert.match(think, /Found two good sources on Rayleigh scattering\. Writing the answer\./);
		for (const [title, url] of [
			['Why Is the Sky Blue? | NASA Space Place', 'https://spaceplace.nasa.gov/blue-sky/'],
			['Rayleigh scattering - Wikipedia', 'https://en.wikipedia.org/wiki/Rayleigh_scattering'],
			['Berlin forecast', 'https://weather.example/berlin']])
			assert.ok(think.includes(`- [${title}](${url}`), `no link to ${url} in:\n${think}`);
		// The <xai:tool_usage_card> token of the reasoning is filtered too.
		assert.doesNotMatch(think, /tool_usage_card|CDATA/);
	});

	test('search previews in the links keep their words apart', async () => {
		const [s] = await both(d, 'grok-4.1-thinking', user('Why is the sky blue?'));
		const { think } = splitThink(s.content);
		// The fake's preview is "...in all directions.\nBlue light is...":
		// a line break dropped without a space glues two sentences.
		assert.doesNotMatch(think, /directions\.Blue|particlesmuch|Sunny,21/, think);
		assert.match(think, /directions\.\s+Blue light/);
	});

	test('per-request reasoning_format: reasoning_content, hidden, think_tags', async () => {
		const [s, n] = await both(d, 'grok-4.1-thinking',
			user('Why is the sky blue?', { reasoning_format: 'reasoning_content' }));
		for (const r of [s, n]) {
			assert.equal(r.content, ANSWER, 'no <think> in content');
			assert.match(r.reasoning, /^\n*Thinking about your request/);
			assert.match(r.reasoning, /\[Rayleigh scattering - Wikipedia\]\(https:\/\/en\.wikipedia\.org/);
		}
		assert.equal(n.reasoning, s.reasoning);
		// Every reasoning delta comes before the first content delta.
		const deltas = s.chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta);
		const firstContent = deltas.findIndex((x) => x.content);
		assert.ok(deltas.slice(firstContent).every((x) => !x.reasoning_content));

		const [h, hn] = await both(d, 'grok-4.1-thinking',
			user('Why is the sky blue?', { reasoning_format: 'hidden' }));
		for (const r of [h, hn]) {
			assert.equal(r.content, ANSWER);
			assert.equal(r.reasoning, undefined);
		}
		const [t] = await both(d, 'grok-4.1-thinking',
			user('Why is the sky blue?', { reasoning_format: 'think_tags' }));
		assert.equal(splitThink(t.content).answer, ANSWER);
	});

	test('filtered_tags removes tags split across tokens, stream and non-stream alike', async () => {
		const [s, n] = await both(d, 'grok-4.1', user('[tags] show me'));
		assert.equal(s.content, TAGS_FILTERED);
		assert.equal(n.content, TAGS_FILTERED);
	});

	test('max_tokens stops the answer with finish_reason "length"', async () => {
		const full = parseCompletion(await chat(d, { model: 'grok-4.1',
			...user('[tokens=300] go') }), 'grok-4.1').content;
		for (const key of ['max_tokens', 'max_completion_tokens']) {
			const [s, n] = await both(d, 'grok-4.1', user('[tokens=300] go', { [key]: 8 }));
			for (const r of [s, n]) {
				assert.equal(r.finish, 'length');
				assert.ok(r.content.length > 0 && r.content.length < full.length / 4,
					`${key}: ${r.content.length} of ${full.length} bytes`);
				assert.ok(full.startsWith(r.content), 'a prefix of the whole answer');
				assert.ok(r.usage.completion_tokens >= 8 && r.usage.completion_tokens < 20,
					JSON.stringify(r.usage));
			}
		}
		// Generous limits change nothing.
		const r = parseCompletion(await chat(d, { model: 'grok-4.1', max_tokens: 100000,
			...user('go') }), 'grok-4.1');
		assert.equal(r.finish, 'stop');
		assert.equal(r.content, ANSWER);
	});

	test('messages are flattened with role labels; <think> echoes are stripped', async () => {
		await d.fake.reset();
		const messages = [
			{ role: 'system', content: 'Be terse.' },
			{ role: 'system', content: [{ type: 'text', text: 'Answer in English.' }] },
			{ role: 'developer', content: 'Cite sources.' },
			{ role: 'user', name: 'alice', content: [{ type: 'text', text: 'part one' },
				{ type: 'text', text: 'part two' }] },
			{ role: 'assistant', content: '<think>\nsecret plan\n</think>\nHello!' },
			{ role: 'user', content: null },
			{ role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
				function: { name: 'get_weather', arguments: '{"city":"Berlin"}' } }] },
			{ role: 'tool', tool_call_id: 'call_1', content: '21 C, sunny' },
			{ role: 'user', content: '[echo] And tomorrow?' },
		];
		const want = 'system: Be terse.\n\nsystem: Answer in English.\n\n' +
			'developer: Cite sources.\n\nuser (alice): part one\npart two\n\n' +
			'assistant: Hello!\n\n' +
			'assistant: [tool call call_1: get_weather({"city":"Berlin"})]\n\n' +
			'tool (call_1): 21 C, sunny\n\n[echo] And tomorrow?';
		const [s, n] = await both(d, 'grok-4.1', { messages });
		const recs = await chats(d.fake);
		assert.equal(recs.length, 2);
		for (const rec of recs) assert.equal(rec.body.message, want);
		// [echo]: the fake answers with what it received.
		assert.equal(s.content, want);
		assert.equal(n.content, want);
		assert.doesNotMatch(recs[0].body.message, /secret plan|<think>/);
	});

	test('a lone user message goes upstream as typed', async () => {
		await d.fake.reset();
		await both(d, 'grok-4.1', user('  Hi there\n'));
		for (const rec of await chats(d.fake)) assert.equal(rec.body.message, '  Hi there\n');
	});

	test('temperature, top_p, max_tokens and unknown fields are accepted', async () => {
		const r = await chat(d, { model: 'grok-4.1', temperature: 0.2, top_p: 0.9,
			max_tokens: 4096, presence_penalty: 0, n: 1, user: 'u-1', seed: 7,
			metadata: { a: 'b' }, tools: [], ...user('hi') });
		assert.equal(parseCompletion(r, 'grok-4.1').content, ANSWER);
	});

	test('wrong types are 400 naming the field, and nothing goes upstream', async () => {
		await d.fake.reset();
		const cases = [
			[{ model: 'grok-4.1', messages: 'hi' }, 'messages'],
			[{ model: 'grok-4.1', messages: [] }, 'messages'],
			[{ model: 'grok-4.1', messages: ['hi'] }, 'messages[0]'],
			[{ model: 'grok-4.1', messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
			[{ model: 'grok-4.1', messages: [{ content: 'hi' }] }, 'messages[0].role'],
			[{ model: 'grok-4.1', messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
			[{ model: 'grok-4.1', messages: [{ role: 'user', content: 'a' },
				{ role: 'user', content: { text: 'x' } }] }, 'messages[1].content'],
			[{ model: 'grok-4.1', messages: [{ role: 'user', content: [{ type: 'audio' }] }] },
				'messages[0].content[0].type'],
			[{ model: 'grok-4.1', messages: [{ role: 'user', content: [{ type: 'text', text: 3 }] }] },
				'messages[0].content[0].text'],
			[{ model: 'grok-4.1', messages: [{ role: 'user', content: ['hi'] }] },
				'messages[0].content[0]'],
			[{ model: 'grok-4.1', messages: [{ role: 'user', content: '' }] }, 'messages'],
			[{ ...user('hi'), model: 'grok-4.1', stream: 'yes' }, 'stream'],
			[{ ...user('hi'), model: 'grok-4.1', temperature: 'hot' }, 'temperature'],
			[{ ...user('hi'), model: 'grok-4.1', temperature: 3 }, 'temperature'],
			[{ ...user('hi'), model: 'grok-4.1', top_p: 2 }, 'top_p'],
			[{ ...user('hi'), model: 'grok-4.1', max_tokens: 0 }, 'max_tokens'],
			[{ ...user('hi'), model: 'grok-4.1', max_tokens: 'many' }, 'max_tokens'],
			[{ ...user('hi'), model: 'grok-4.1', max_tokens: 1.5 }, 'max_tokens'],
			[{ ...user('hi'), model: 'grok-4.1', stream_options: 'x' }, 'stream_options'],
			[{ ...user('hi'), model: 'grok-4.1', stream: true, stream_options: { include_usage: 'y' } },
				'stream_options.include_usage'],
			[{ ...user('hi'), model: 'grok-4.1', reasoning_format: 'xml' }, 'reasoning_format'],
			[{ ...user('hi'), model: 'grok-4.1', reasoning_format: 5 }, 'reasoning_format'],
			[{ ...user('hi'), model: ['grok-4.1'] }, 'model'],
		];
		for (const [body, param] of cases) {
			const r = await chat(d, body);
			const what = `${JSON.stringify(body)} -> ${r.status} ${r.body}`;
			assert.equal(r.status, 400, what);
			assert.match(r.headers['content-type'], /^application\/json/);
			assert.equal(r.json.error.type, 'invalid_request_error', what);
			assert.equal(r.json.error.param, param, what);
			assert.ok(r.json.error.message.includes(param), `message names ${param}: ${what}`);
			assert.equal(typeof r.json.error.code, 'string', what);
		}
		assert.deepEqual(await chats(d.fake), [], 'no request reached grok.com');
	});
});

describe('config shapes the answer', () => {
	test('show_thinking: false hides reasoning; a request may still ask for it', async () => {
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { show_thinking: false } });
		try {
			const [s, n] = await both(d, 'grok-4-fast', user('hi'));
			for (const r of [s, n]) {
				assert.equal(r.content, ANSWER);
				assert.equal(r.reasoning, undefined);
			}
			const [t] = await both(d, 'grok-4-fast', user('hi', { reasoning_format: 'think_tags' }));
			assert.equal(splitThink(t.content).answer, ANSWER);
			const [rc] = await both(d, 'grok-4-fast',
				user('hi', { reasoning_format: 'reasoning_content' }));
			assert.equal(rc.content, ANSWER);
			assert.match(rc.reasoning, /Rayleigh/);
		} finally { await d.stop(); }
	});

	test('grok.reasoning_format: reasoning_content puts reasoning in delta.reasoning_content', async () => {
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { reasoning_format: 'reasoning_content' } });
		try {
			const [s, n] = await both(d, 'grok-4-expert', user('hi'));
			for (const r of [s, n]) {
				assert.equal(r.content, ANSWER);
				assert.match(r.reasoning, /The user asks why the sky is blue\./);
				assert.ok(r.reasoning.includes('- [Why Is the Sky Blue? | NASA Space Place](https://spaceplace.nasa.gov/blue-sky/'));
				assert.doesNotMatch(r.reasoning, /<think>|tool_usage_card/);
			}
			assert.equal(n.reasoning, s.reasoning);
			const [t] = await both(d, 'grok-4-expert', user('hi', { reasoning_format: 'think_tags' }));
			assert.equal(splitThink(t.content).answer, ANSWER);
			assert.equal(t.reasoning, undefined);
			const [h] = await both(d, 'grok-4-expert', user('hi', { reasoning_format: 'hidden' }));
			assert.equal(h.content, ANSWER);
			assert.equal(h.reasoning, undefined);
		} finally { await d.stop(); }
	});

	test('an empty filtered_tags keeps the tags; a list filters only its names', async () => {
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { filtered_tags: '' } });
		try {
			const [s, n] = await both(d, 'grok-4.1', user('[tags] show me'));
			assert.equal(s.content, TAGS_RAW);
			assert.equal(n.content, TAGS_RAW);
		} finally { await d.stop(); }
		const d2 = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { filtered_tags: ' grok:render ' } });
		try {
			const want = TAGS_RAW.replace(/<grok:render[\s\S]*?<\/grok:render>/g, '');
			assert.ok(want.includes('<xaiartifact') && !want.includes('grok:render'));
			const [s, n] = await both(d2, 'grok-4.1', user('[tags] show me'));
			assert.equal(s.content, want);
			assert.equal(n.content, want);
		} finally { await d2.stop(); }
	});

	test('a models: entry renames the upstream model; a new entry adds one', async () => {
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { models: [
				{ name: 'grok-4.1', upstream: 'grok-4-1-renamed' },
				{ name: 'grok-test-new', upstream: 'grok-4', mode: 'MODEL_MODE_GROK_4_TEST' },
			] } }, ['-m', 'grok-4-1-renamed']);
		try {
			await both(d, 'grok-4.1', user('hi'));
			await both(d, 'grok-test-new', user('hi'));
			const recs = await chats(d.fake);
			assert.deepEqual(recs.map((x) => [x.body.modelName, x.body.modelMode]), [
				['grok-4-1-renamed', 'MODEL_MODE_GROK_4_1'],
				['grok-4-1-renamed', 'MODEL_MODE_GROK_4_1'],
				['grok-4', 'MODEL_MODE_GROK_4_TEST'],
				['grok-4', 'MODEL_MODE_GROK_4_TEST']]);
			assert.ok(recs.every((x) => x.status === 200));
			const rl = await d.fake.requests('?path=/rest/rate-limits');
			assert.ok(rl.some((x) => x.body.modelName === 'grok-4-1-renamed'),
				'the rate limits are asked for the renamed model');
		} finally { await d.stop(); }
	});

	test('fixed x_statsig_id, statsig_prefix, cf_clearance, user_agent, temporary', async () => {
		const ua = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 ' +
			'(KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36';
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { dynamic_statsig: false, x_statsig_id: 'Zml4ZWQtc3RhdHNpZw==',
				cf_clearance: 'cf-value-1', user_agent: ua, temporary: true } });
		try {
			await both(d, 'grok-4.1', user('hi'));
			const recs = await chats(d.fake);
			assert.equal(recs.length, 2);
			for (const rec of recs) {
				assert.equal(rec.status, 200);
				assert.equal(rec.statsig, 'Zml4ZWQtc3RhdHNpZw==');
				assert.equal(rec.cookie, 'sso-rw=t1; sso=t1; cf_clearance=cf-value-1');
				assert.equal(rec.user_agent, ua);
				assert.equal(rec.headers['sec-ch-ua-platform'], '"macOS"');
				assert.match(rec.headers['sec-ch-ua'], /"Google Chrome";v="140"/);
				assert.equal(rec.body.temporary, true);
			}
			assert.notEqual(recs[0].request_id, recs[1].request_id);
		} finally { await d.stop(); }
		const d2 = await startWithFake({ workers: 1, tokens: tokenFile(['t1']),
			grok: { statsig_prefix: '' } });
		try {
			await both(d2, 'grok-4.1', user('hi'));
			for (const rec of await chats(d2.fake)) assertStatsigDynamic(rec.statsig, '');
		} finally { await d2.stop(); }
	});
});

// Some clients send booleans as strings; "true" and "false" are taken.
test('"stream": "true" as a string streams, "false" does not', async () => {
	const d = await startWithFake({ workers: 1, tokens: tokenFile(['t1']) });
	try {
		let r = await chat(d, { model: 'grok-4.1', stream: 'true',
			messages: [{ role: 'user', content: 'hi' }] });
		assert.equal(r.status, 200);
		assert.match(r.headers['content-type'], /^text\/event-stream/);
		assert.match(r.body, /data: \[DONE\]\n\n$/);
		r = await chat(d, { model: 'grok-4.1', stream: 'false',
			messages: [{ role: 'user', content: 'hi' }] });
		assert.equal(r.status, 200);
		assert.equal(r.json.object, 'chat.completion');
	} finally { await d.stop(); }
});
