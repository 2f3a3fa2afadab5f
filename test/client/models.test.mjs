// models.list() and models.retrieve() through the official openai SDK.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { tokenFile } from '../integration/lib.mjs';
import { KEY, OpenAI, SEED_MODELS, rejectsWith, sdk, up } from './helpers.mjs';

const T = { timeout: 20000 };

describe('models with a normal and a super token', () => {
	let d, ai;
	before(async () => {
		d = await up({ server: { api_keys: [KEY] },
			tokens: tokenFile(['tok-models-1'], ['tok-models-super-1']) });
		ai = sdk(d);
	});
	after(() => d?.stop());

	test('models.list() gives the seed models', T, async () => {
		const ids = [];
		for await (const m of ai.models.list()) {
			assert.equal(m.object, 'model');
			assert.equal(m.owned_by, 'x-ai');
			assert.ok(Number.isInteger(m.created));
			ids.push(m.id);
		}
		assert.deepEqual(ids, SEED_MODELS);
		const page = await ai.models.list();
		assert.deepEqual(page.data.map((m) => m.id), SEED_MODELS);
		assert.equal(page.hasNextPage(), false);
	});

	test('models.retrieve() a listed one, NotFoundError for others', T, async () => {
		const m = await ai.models.retrieve('grok-4.1-thinking');
		assert.equal(m.id, 'grok-4.1-thinking');
		assert.equal(m.object, 'model');
		await rejectsWith(ai.models.retrieve('gpt-4o'), OpenAI.NotFoundError, 404);
	});

	test('every listed text model answers a chat', T, async () => {
		for (const id of SEED_MODELS.filter((x) => !x.includes('imagine'))) {
			const c = await ai.chat.completions.create({ model: id,
				messages: [{ role: 'user', content: 'Hi [tokens=3]' }] });
			assert.equal(c.model, id);
			assert.equal(c.choices[0].finish_reason, 'stop');
			assert.ok(c.choices[0].message.content.length > 0, id);
		}
	});
});

describe('models without a super token', () => {
	let d;
	before(async () => {
		d = await up({ server: { api_keys: [KEY] },
			tokens: tokenFile(['tok-models-2']) });
	});
	after(() => d?.stop());

	test('models.list() leaves out grok-4-heavy', T, async () => {
		const page = await sdk(d).models.list();
		assert.deepEqual(page.data.map((m) => m.id),
			SEED_MODELS.filter((x) => x !== 'grok-4-heavy'));
	});
});
