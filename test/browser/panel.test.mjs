// The admin panel in a real browser: Debian's chromium, headless, driven
// by playwright-core against the real daemon (two workers). A person's
// path through it: a wrong password refused, log in, add two normal
// tokens and one super token in one paste, see their types, tag one,
// delete one, reload and still be logged in, look at every view on a
// desktop and a phone. Screenshots land in $BUILD/browser-shots/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { BUILD, request, run, sleep, startDaemon, tmpdir } from '../integration/lib.mjs';

const PASSWORD = 'correct horse battery staple';
const SHOTS = path.join(BUILD, 'browser-shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DESKTOP = { width: 1366, height: 860 };
const PHONE = { width: 390, height: 844 };

async function shot(page, name) {
	fs.mkdirSync(SHOTS, { recursive: true });
	await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

// The rows of the token table as {fingerprint, type, status, tags}.
async function rows(page) {
	return page.$$eval('#tok-body tr', (trs) => trs.map((tr) => ({
		id: tr.dataset.id,
		fingerprint: tr.querySelector('.fp').textContent,
		type: tr.querySelector('.type').textContent,
		status: tr.querySelector('.badge').textContent,
		tags: [...tr.querySelectorAll('.tag')].map((t) => t.textContent),
	})));
}

async function waitRows(page, n) {
	await page.waitForFunction((k) => document.querySelectorAll('#tok-body tr').length === k,
		n, { timeout: 10000 });
	return rows(page);
}

// The token file once the master has written what we expect.
async function tokenFile(d, ok, ms = 5000) {
	const t0 = Date.now();
	let last;
	while (Date.now() - t0 < ms) {
		try {
			last = JSON.parse(fs.readFileSync(d.tokenPath, 'utf8'));
			if (ok(last)) return last;
		} catch { /* not written yet */ }
		await sleep(50);
	}
	assert.fail(`token.json never matched: ${JSON.stringify(last)}`);
}

describe('admin panel in chromium', () => {
	let d, ctx, page, profile;
	const pageErrors = [];

	before(async () => {
		assert.ok(fs.existsSync(CHROMIUM),
			`${CHROMIUM} is missing: apt-get install chromium (make test does)`);
		const h = run(['--hash-password'], `${PASSWORD}\n`);
		assert.equal(h.status, 0, h.stderr);
		d = await startDaemon({ workers: 2,
			server: { admin_password: h.stdout.trim() } });
		profile = tmpdir('wpd-chromium-');
		ctx = await chromium.launchPersistentContext(profile, {
			executablePath: CHROMIUM,
			headless: true,
			viewport: DESKTOP,
			args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
				'--no-first-run', '--disable-background-networking',
				'--disable-component-update', '--disable-sync'],
		});
		page = ctx.pages()[0] || await ctx.newPage();
		page.on('pageerror', (e) => pageErrors.push(e.message));
	});

	after(async () => {
		await ctx?.close();
		await d?.stop();
		if (profile) fs.rmSync(profile, { recursive: true, force: true });
	});

	test('the panel asks for the password and refuses a wrong one', async () => {
		await page.goto(d.url('/projects/grok'));
		await page.waitForSelector('#view-login:not([hidden])');
		await shot(page, 'desktop-login');
		await page.fill('#login-password', 'not the password');
		await page.click('#login-submit');
		await page.waitForSelector('#login-error:not([hidden])');
		assert.match(await page.textContent('#login-error'), /wrong password/i);
		assert.equal((await ctx.cookies()).length, 0, 'no cookie after a wrong password');
		assert.ok(await page.isVisible('#view-login'));
	});

	test('log in; the token list is empty', async () => {
		await page.fill('#login-password', PASSWORD);
		await page.click('#login-submit');
		await page.waitForSelector('#view-tokens:not([hidden])');
		await page.waitForSelector('#tok-empty:not([hidden])');
		const c = (await ctx.cookies()).find((x) => x.name === 'webproxyd_session');
		assert.ok(c, 'session cookie set');
		assert.equal(c.httpOnly, true);
		assert.equal(c.sameSite, 'Strict');
		assert.equal(await page.isVisible('#logout'), true);
	});

	test('add two normal and one super token in one paste', async () => {
		await page.click('#tok-add');
		await page.waitForSelector('#dlg-add[open]');
		await page.check('#add-form input[value="ssoNormal"]');
		await page.fill('#add-tokens', 'browser-normal-1\nbrowser-normal-2, ssoSuper:browser-super-1');
		await shot(page, 'desktop-add-dialog');
		await page.click('#add-submit');
		await page.waitForSelector('#dlg-add', { state: 'hidden' });
		const r = await waitRows(page, 3);
		assert.deepEqual(r.map((x) => x.type).sort(), ['SSO Normal', 'SSO Normal', 'SSO Super']);
		assert.ok(r.every((x) => x.status === 'active' && /^tok:[0-9a-f]{8}$/.test(x.fingerprint)));
		// The page never shows a token itself.
		const html = await page.content();
		assert.doesNotMatch(html, /browser-normal-1|browser-super-1/);
		const f = await tokenFile(d, (j) => Object.keys(j.ssoNormal).length === 2 &&
			Object.keys(j.ssoSuper).length === 1);
		assert.ok('browser-super-1' in f.ssoSuper);
		await shot(page, 'desktop-tokens');
	});

	test('a second paste reports duplicates and junk instead of adding them', async () => {
		await page.click('#tok-add');
		await page.fill('#add-tokens', 'browser-normal-1\nnot a token');
		await page.click('#add-submit');
		await page.waitForSelector('#add-result:not([hidden])');
		const text = await page.textContent('#add-result');
		assert.match(text, /0 added, 1 already there, 1 not valid/);
		await page.click('#dlg-add [data-close]');
		await waitRows(page, 3);
	});

	test('tag the super token', async () => {
		const sup = (await rows(page)).find((x) => x.type === 'SSO Super');
		await page.click(`#tok-body tr[data-id="${sup.id}"] button[data-act="edit"]`);
		await page.waitForSelector('#dlg-edit[open]');
		await page.fill('#edit-tags', 'vip, heavy-pool');
		await page.fill('#edit-note', 'bought in November');
		await page.click('#edit-submit');
		await page.waitForSelector('#dlg-edit', { state: 'hidden' });
		await page.waitForFunction((id) => document.querySelectorAll(
			`#tok-body tr[data-id="${id}"] .tag`).length === 2, sup.id);
		const now = (await rows(page)).find((x) => x.id === sup.id);
		assert.deepEqual(now.tags, ['vip', 'heavy-pool']);
		// The tag filter offers it and narrows the list to that token.
		await page.selectOption('#f-tag', 'vip');
		assert.equal((await waitRows(page, 1))[0].id, sup.id);
		await page.selectOption('#f-tag', '');
		await waitRows(page, 3);
		const f = await tokenFile(d, (j) => j.ssoSuper['browser-super-1']?.tags.length === 2);
		assert.equal(f.ssoSuper['browser-super-1'].note, 'bought in November');
	});

	test('delete a normal token', async () => {
		const normal = (await rows(page)).find((x) => x.type === 'SSO Normal');
		await page.click(`#tok-body tr[data-id="${normal.id}"] button[data-act="delete"]`);
		await page.waitForSelector('#dlg-confirm[open]');
		await page.click('#confirm-ok');
		const r = await waitRows(page, 2);
		assert.ok(!r.some((x) => x.id === normal.id));
		assert.deepEqual(r.map((x) => x.type).sort(), ['SSO Normal', 'SSO Super']);
		await tokenFile(d, (j) => Object.keys(j.ssoNormal).length === 1);
	});

	test('after a reload the page is still logged in', async () => {
		await page.reload();
		await page.waitForSelector('#view-tokens:not([hidden])');
		const r = await waitRows(page, 2);
		assert.ok(r.some((x) => x.tags.includes('vip')));
		assert.equal(await page.isVisible('#view-login'), false);
	});

	test('cache, statistics and settings views', async () => {
		await page.click('#nav a[data-view="cache"]');
		await page.waitForSelector('#view-cache:not([hidden])');
		await page.waitForFunction(() => document.querySelector(
			'.cache-card[data-kind="image"] [data-f="size"]').textContent !== '–');
		await shot(page, 'desktop-cache');
		await page.click('#nav a[data-view="stats"]');
		await page.waitForSelector('#stats-cards .stat');
		assert.match(await page.textContent('#stats-tokens'), /SSO Super/);
		await shot(page, 'desktop-stats');
		await page.click('#nav a[data-view="settings"]');
		await page.waitForSelector('#settings-body .card');
		const s = await page.textContent('#settings-body');
		assert.match(s, /admin_password/);
		assert.doesNotMatch(s, /\$argon2id\$/, 'the hash is masked');
		await shot(page, 'desktop-settings');
	});

	test('on a phone', async () => {
		await page.setViewportSize(PHONE);
		await page.click('#nav a[data-view="tokens"]');
		await waitRows(page, 2);
		// No sideways scrolling: the table turns into cards.
		const wide = await page.evaluate(() => document.documentElement.scrollWidth);
		assert.ok(wide <= PHONE.width + 1, `page is ${wide}px wide on a ${PHONE.width}px phone`);
		await shot(page, 'phone-tokens');
		await page.click('#tok-add');
		await page.waitForSelector('#dlg-add[open]');
		await shot(page, 'phone-add-dialog');
		await page.click('#dlg-add [data-close]');
		await page.click('#nav a[data-view="stats"]');
		await page.waitForSelector('#stats-cards .stat');
		await shot(page, 'phone-stats');
		await page.click('#nav a[data-view="settings"]');
		await page.waitForSelector('#settings-body .card');
		await shot(page, 'phone-settings');
		await page.setViewportSize(DESKTOP);
	});

	test('in Chinese, and back to English', async () => {
		await page.click('#nav a[data-view="tokens"]');
		await page.click('#lang');
		await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
		await page.waitForSelector('#view-tokens:not([hidden])');
		await waitRows(page, 2);
		assert.equal((await page.textContent('#tok-add')).trim(), '添加令牌');
		assert.equal((await page.textContent('#nav a[data-view="tokens"]')).trim(), '令牌');
		assert.match(await page.textContent('#tok-body'), /正常/);
		await page.click('#tok-add');
		await page.waitForSelector('#dlg-add[open]');
		await shot(page, 'desktop-zh-add-dialog');
		await page.click('#dlg-add [data-close]');
		await shot(page, 'desktop-zh-tokens');
		await page.click('#lang');
		await page.waitForFunction(() => document.documentElement.lang === 'en');
		await page.waitForSelector('#view-tokens:not([hidden])');
		assert.equal((await page.textContent('#tok-add')).trim(), 'Add tokens');
	});

	test('log out: the API refuses the old cookie', async () => {
		const cookie = (await ctx.cookies()).find((x) => x.name === 'webproxyd_session');
		await page.click('#logout');
		await page.waitForSelector('#view-login:not([hidden])');
		const r = await request(d.url('/api/projects/grok/tokens'),
			{ headers: { cookie: `webproxyd_session=${cookie.value}` } });
		assert.equal(r.status, 401);
	});

	test('no script error on the page all along', () => {
		assert.deepEqual(pageErrors, []);
	});
});

describe('admin panel without a password', () => {
	test('says how to set one', async () => {
		const d = await startDaemon({ workers: 1 });
		const profile = tmpdir('wpd-chromium-');
		let ctx;
		try {
			ctx = await chromium.launchPersistentContext(profile, {
				executablePath: CHROMIUM, headless: true, viewport: PHONE,
				args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
					'--no-first-run', '--disable-background-networking',
					'--disable-component-update', '--disable-sync'],
			});
			const page = ctx.pages()[0] || await ctx.newPage();
			await page.goto(d.url('/projects/grok/'));
			await page.waitForSelector('#view-nopass:not([hidden])');
			assert.match(await page.textContent('#view-nopass'), /webproxyd --hash-password/);
			assert.equal(await page.isVisible('#view-login'), false);
			await shot(page, 'phone-no-password');
		} finally {
			await ctx?.close();
			await d.stop();
			fs.rmSync(profile, { recursive: true, force: true });
		}
	});
});
