// What the client tests share: an OpenAI SDK client pointed at a daemon,
// and a reader that drains an SDK stream while checking the invariants
// every OpenAI client relies on. The daemon and the fake grok.com come
// from ../integration/lib.mjs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';

import { startDaemon, startFake } from '../integration/lib.mjs';

export { OpenAI };

// Run stop(); if the process has not exited after ms, SIGKILL it.
async function stopWithin(stop, pid, ms = 10000) {
	const t = setTimeout(() => {
		try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
	}, ms);
	try { return await stop(); } finally { clearTimeout(t); }
}

// startWithFake() of ../integration/lib.mjs, except that a daemon that
// fails to start takes the fake down with it (a fake left running would
// keep the test file's process, and so the whole run, alive for ever),
// that stopping never waits more than 10 s per process, and that the
// daemon's temporary folder is removed once it has stopped.
export async function up(opts = {}, fakeArgs = []) {
	const fake = await startFake(fakeArgs);
	const stopFake = () => stopWithin(() => fake.stop(), fake.proc.pid);
	let d;
	try {
		d = await startDaemon({ ...opts, grok: { upstream_url: fake.url,
			assets_url: fake.url, ...(opts.grok || {}) } });
	} catch (e) {
		await stopFake();
		throw e;
	}
	d.fake = fake;
	const stop = d.stop.bind(d);
	d.stop = async (sig) => {
		try {
			return await stopWithin(() => stop(sig), d.pid);
		} finally {
			await stopFake();
			fs.rmSync(d.dir, { recursive: true, force: true });
		}
	};
	return d;
}

export const KEY = 'sk-client-test-1';

// The seed's models in /v1/models order.
export const SEED_MODELS = ['grok-3-fast', 'grok-4.1', 'grok-4.1-thinking',
	'grok-4-fast', 'grok-4-fast-expert', 'grok-4-expert', 'grok-4-heavy',
	'grok-imagine-0.9'];

// No SDK retries, so a failure shows at once; a timeout well under the
// test's own.
export function sdk(d, apiKey = KEY, opts = {}) {
	return new OpenAI({ baseURL: d.url('/v1'), apiKey, maxRetries: 0,
		timeout: 15000, ...opts });
}

// Drain an SDK chat stream. Returns { chunks, content, reasoning, usage,
// finish, ids, roles, models }; checks that every chunk is a
// chat.completion.chunk and that chunks with choices have exactly one.
export async function drain(stream) {
	const r = { chunks: [], content: '', reasoning: '', usage: null,
		finish: null, ids: new Set(), roles: [], models: new Set() };
	for await (const c of stream) {
		r.chunks.push(c);
		assert.equal(c.object, 'chat.completion.chunk');
		r.ids.add(c.id);
		r.models.add(c.model);
		if (c.usage) r.usage = c.usage;
		if (c.choices.length === 0) continue;
		assert.equal(c.choices.length, 1, JSON.stringify(c));
		const ch = c.choices[0];
		assert.equal(ch.index, 0);
		if (ch.delta.role !== undefined) r.roles.push([r.chunks.length - 1, ch.delta.role]);
		if (typeof ch.delta.content === 'string') r.content += ch.delta.content;
		if (typeof ch.delta.reasoning_content === 'string')
			r.reasoning += ch.delta.reasoning_content;
		if (ch.finish_reason) {
			assert.equal(r.finish, null, 'two chunks carry finish_reason');
			r.finish = ch.finish_reason;
		}
	}
	return r;
}

// The checks every stream must pass: one id, the public model name, role
// "assistant" in the first chunk only, a finish_reason, usage that adds
// up.
export function assertWellFormed(r, model) {
	assert.ok(r.chunks.length > 1, 'too few chunks');
	assert.equal(r.ids.size, 1, `ids: ${[...r.ids]}`);
	assert.match([...r.ids][0], /^chatcmpl-/);
	assert.deepEqual([...r.models], [model]);
	assert.deepEqual(r.roles, [[0, 'assistant']]);
	assert.ok(r.finish === 'stop' || r.finish === 'length', `finish ${r.finish}`);
	assertUsage(r.usage);
}

export function assertUsage(u) {
	assert.ok(u, 'no usage');
	for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])
		assert.ok(Number.isInteger(u[k]) && u[k] >= 0, `${k}: ${u[k]}`);
	assert.ok(u.prompt_tokens > 0);
	assert.ok(u.completion_tokens > 0);
	assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

// Await a promise that must reject with an SDK error of class cls and
// HTTP status; returns the error.
export async function rejectsWith(p, cls, status) {
	let err;
	try {
		await p;
	} catch (e) {
		err = e;
	}
	assert.ok(err, `expected ${cls.name} ${status}, got success`);
	assert.ok(err instanceof cls,
		`expected ${cls.name}, got ${err.constructor.name} ${err.status}: ${err.message}`);
	assert.equal(err.status, status, err.message);
	return err;
}
