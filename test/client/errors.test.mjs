// Failures as the official openai SDK sees them: each must surface as the
// SDK's APIError subclass for its HTTP status, with the OpenAI error
// fields (code, type, param) a program can branch on, and a message a
// person can act on. SDK retries are off, so every answer is the first.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { tokenFile } from '../integration/lib.mjs';
import { KEY, OpenAI, drain, rejectsWith, sdk, up } from './helpers.mjs';

const T = { timeout: 20000 };
const user = (content) => [{ role: 'user', content }];
const ask = (ai, extra = {}) => ai.chat.completions.create({
	model: 'grok-4.1', messages: user('Hello'), ...extra });

// One daemon (and fake) per token pool; stopped after the suite.
function withPool(name, normal, sup, fn, opts = {}) {
	describe(name, () => {
		const ctx = {};
		before(async () => {
			ctx.d = await up({ server: { api_keys: [KEY] },
				tokens: tokenFile(normal, sup), ...opts });
			ctx.ai = sdk(ctx.d);
		});
		after(() => ctx.d?.stop());
		fn(ctx);
	});
}

withPool('client mistakes, with a good token', ['tok-err-good-1'], [], (ctx) => {
	test('a wrong API key is AuthenticationError 401', T, async () => {
		for (const stream of [false, true]) {
			const e = await rejectsWith(ask(sdk(ctx.d, 'sk-wrong-key'), { stream }),
				OpenAI.AuthenticationError, 401);
			assert.equal(e.code, 'invalid_api_key');
			assert.equal(typeof e.type, 'string');
		}
		await rejectsWith(sdk(ctx.d, 'sk-wrong-key').models.list(),
			OpenAI.AuthenticationError, 401);
	});

	test('an unknown model is NotFoundError 404 model_not_found', T, async () => {
		const e = await rejectsWith(ask(ctx.ai, { model: 'gpt-9' }),
			OpenAI.NotFoundError, 404);
		assert.equal(e.code, 'model_not_found');
		assert.equal(e.param, 'model');
		assert.match(e.message, /gpt-9/);
	});

	test('a bad parameter is BadRequestError 400 naming it', T, async () => {
		const e = await rejectsWith(ask(ctx.ai, { temperature: 7 }),
			OpenAI.BadRequestError, 400);
		assert.equal(e.param, 'temperature');
		assert.equal(e.type, 'invalid_request_error');
		const e2 = await rejectsWith(ask(ctx.ai, { stream: true,
			stream_options: { include_usage: 'yes' } }), OpenAI.BadRequestError, 400);
		assert.equal(e2.param, 'stream_options.include_usage');
		const e3 = await rejectsWith(ask(ctx.ai, { messages: [] }),
			OpenAI.BadRequestError, 400);
		assert.equal(e3.param, 'messages');
	});

	test('an upstream 500 for one request is InternalServerError 502', T, async () => {
		for (const stream of [false, true]) {
			const e = await rejectsWith(ask(ctx.ai, { stream,
				messages: user('Hello [fault=500]') }), OpenAI.InternalServerError, 502);
			assert.equal(e.code, 'upstream_error');
			assert.match(e.message, /500/);
		}
	});

	test('an empty upstream answer is 502 upstream_empty', T, async () => {
		const e = await rejectsWith(ask(ctx.ai, { messages: user('Hi [fault=empty]') }),
			OpenAI.InternalServerError, 502);
		assert.equal(e.code, 'upstream_empty');
	});

	test('an error after the stream began: content, then APIError from the iterator', T, async () => {
		for (const [fault, code] of [['inband', 'upstream_error'],
			['cut', 'upstream_cut'], ['modelerror', 'upstream_error']]) {
			const stream = await ask(ctx.ai, { stream: true,
				messages: user(`Hello [fault=${fault}]`) });
			let content = '';
			let err;
			try {
				for await (const c of stream)
					content += c.choices[0]?.delta?.content ?? '';
			} catch (e) {
				err = e;
			}
			assert.ok(err instanceof OpenAI.APIError, `${fault}: ${err}`);
			assert.equal(err.code, code, `${fault}: ${err.message}`);
			assert.ok(err.message.length > 0);
			assert.ok(content.length > 0, `${fault}: nothing before the error`);
		}
	});

	test('the stream() helper rejects finalChatCompletion() on a mid-stream error', T, async () => {
		const s = ctx.ai.chat.completions.stream({ model: 'grok-4.1',
			messages: user('Hello [fault=inband]') });
		let deltas = '';
		s.on('content', (dl) => { deltas += dl; });
		let err;
		try { await s.finalChatCompletion(); } catch (e) { err = e; }
		assert.ok(err instanceof OpenAI.APIError, String(err));
		assert.equal(err.code, 'upstream_error');
		assert.ok(deltas.length > 0);
	});

	test('a request after all of that still succeeds', T, async () => {
		const c = await ask(ctx.ai);
		assert.equal(c.choices[0].finish_reason, 'stop');
		const r = await drain(await ask(ctx.ai, { stream: true }));
		assert.equal(r.content, c.choices[0].message.content);
	});
});

withPool('a fault-500 token', ['fault-500-client'], [], (ctx) => {
	test('is InternalServerError 502 upstream_error, stream or not', T, async () => {
		for (const stream of [false, true]) {
			const e = await rejectsWith(ask(ctx.ai, { stream }),
				OpenAI.InternalServerError, 502);
			assert.equal(e.code, 'upstream_error');
			assert.equal(e.type, 'server_error');
			assert.match(e.message, /grok\.com answered 500/);
		}
	});
});

withPool('no token at all', [], [], (ctx) => {
	test('is InternalServerError 503 that says how to add tokens', T, async () => {
		for (const stream of [false, true]) {
			const e = await rejectsWith(ask(ctx.ai, { stream }),
				OpenAI.InternalServerError, 503);
			assert.equal(e.code, 'no_token_available');
			assert.match(e.message, /token\.json|admin panel/);
		}
	});
});

withPool('a rate-limited token (fault-429)', ['fault-429-client'], [], (ctx) => {
	test('is RateLimitError 429 with Retry-After', T, async () => {
		for (const stream of [false, true]) {
			const e = await rejectsWith(ask(ctx.ai, { stream }),
				OpenAI.RateLimitError, 429);
			assert.equal(e.code, 'rate_limit_exceeded');
			assert.equal(e.type, 'rate_limit_error');
			const ra = Number(e.headers.get('retry-after'));
			assert.ok(Number.isInteger(ra) && ra > 0, `retry-after ${ra}`);
		}
	});
});

withPool('an anti-bot 403 on every try (fault-403bot)', ['fault-403bot-client'], [], (ctx) => {
	test('is 502 upstream_blocked that names the fix', T, async () => {
		const e = await rejectsWith(ask(ctx.ai), OpenAI.InternalServerError, 502);
		assert.equal(e.code, 'upstream_blocked');
		assert.match(e.message, /proxy|cf_clearance/);
	});
});

// DESIGN.md §5.6: a 401 from grok.com is not the client's 401; it is an
// upstream/token failure, 502, whatever the number of tokens.
withPool('two tokens grok.com rejects (fault-401)', ['fault-401-a', 'fault-401-b'], [], (ctx) => {
	test('is 502 upstream_unauthorized, not the client\'s 401', T, async () => {
		const e = await rejectsWith(ask(ctx.ai), OpenAI.InternalServerError, 502);
		assert.equal(e.code, 'upstream_unauthorized');
		assert.match(e.message, /401/);
	});
});

withPool('the only token grok.com rejects (fault-401)', ['fault-401-only'], [], (ctx) => {
	test('is 502 upstream_unauthorized, not the client\'s 401', T, async () => {
		const e = await rejectsWith(ask(ctx.ai), OpenAI.InternalServerError, 502);
		assert.equal(e.code, 'upstream_unauthorized', e.message);
		assert.match(e.message, /401/);
	});
});
