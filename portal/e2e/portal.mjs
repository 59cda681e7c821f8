// The portal in a real browser (the system's Chromium, driven by playwright-core), against
// a running berth that tests/portal.rs starts with the Harbor simulator. Each step asserts
// what a person would see; screenshots go to $SCREENSHOTS. Exits non-zero on a failure.
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set`)
  return v
}
const BASE = env('BERTH_URL')
const SHOTS = env('SCREENSHOTS')
const OFFICIAL = ['ubuntu20-pytorch:2.0', 'ubuntu20-tensorflow:2.12', 'ubuntu22-cuda:12.0', 'ubuntu20-jupyter:latest']
mkdirSync(SHOTS, { recursive: true })

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // Playwright gives every launch a fresh, temporary user data dir of its own.
})

const consoleErrors = []
// Steps that make the API refuse on purpose (an invalid Dockerfile, an expired token) set
// the status they expect; Chromium logs those refusals as console errors.
let expectedRefusal = null
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } })
  const page = await context.newPage()
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    if (expectedRefusal && m.text().includes(`status of ${expectedRefusal}`)) return
    consoleErrors.push(m.text())
  })
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`))
  return page
}
const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
const names = async (page, scope) => page.locator(`${scope} [data-test=image-name]`).allInnerTexts()
async function signInWith(page, token) {
  await page.goto(BASE + '/')
  await field(page, 'token-input').fill(token)
  await page.locator('[data-test=token-submit]').click()
}
async function choose(page, selectTest, option) {
  await page.locator(`[data-test=${selectTest}]`).click()
  await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: option }).first().click()
}
async function clearSelect(page, selectTest) {
  const select = page.locator(`[data-test=${selectTest}]`)
  await select.hover()
  await select.locator('.el-select__clear').click()
}
async function waitForNames(page, scope, expected) {
  await page.waitForFunction(([scope, expected]) => {
    const got = [...document.querySelectorAll(`${scope} [data-test=image-name]`)].map((e) => e.textContent.trim())
    return JSON.stringify(got) === JSON.stringify(expected)
  }, [scope, expected], { timeout: 10000 }).catch(async () => {
    assert.deepEqual(await names(page, scope), expected)
  })
}
// Element Plus puts attributes on the inner <input>/<textarea> of its inputs.
const field = (page, test) => page.locator(`:is(input,textarea)[data-test=${test}], [data-test=${test}] :is(input,textarea)`).first()
const step = (name) => console.log(`portal e2e: ${name}`)

// 1. First load as a user: the official images, and how much JavaScript came over the wire.
step('first load, JavaScript size')
const page = await newPage()
const js = []
page.on('requestfinished', async (req) => {
  if (req.resourceType() !== 'script') return
  const res = await req.response()
  const sizes = await req.sizes()
  js.push({ url: req.url(), bytes: sizes.responseBodySize, encoding: res.headers()['content-encoding'] })
})
await page.goto(BASE + '/')
await page.locator('[data-test=signin]').waitFor()
const scriptsBeforeSignIn = js.length
await signInWith(page, env('USER_TOKEN'))
const official = '[data-test=catalog-official]'
await waitForNames(page, official, OFFICIAL)
await page.waitForLoadState('networkidle')
const jsBytes = js.reduce((n, r) => n + r.bytes, 0)
console.log(`portal e2e: first load transferred ${jsBytes} bytes of JavaScript in ${js.length} file(s)`)
assert.ok(scriptsBeforeSignIn >= 1 && js.length >= 1, 'no script loaded')
assert.ok(js.every((r) => r.encoding === 'gzip'), `scripts not gzip-encoded: ${JSON.stringify(js)}`)
assert.ok(jsBytes > 0 && jsBytes < 300 * 1024, `first-load JavaScript is ${jsBytes} bytes compressed`)
await shot(page, '01-official')

// 2. Filters, search and sort on the official tab.
step('filters, search, sort')
await choose(page, 'filter-framework', 'pytorch')
await waitForNames(page, official, ['ubuntu20-pytorch:2.0'])
await clearSelect(page, 'filter-framework')
await waitForNames(page, official, OFFICIAL)
await choose(page, 'filter-cuda', '12.0')
await waitForNames(page, official, ['ubuntu22-cuda:12.0'])
await shot(page, '02-filter-cuda')
await clearSelect(page, 'filter-cuda')
await field(page, 'search').fill('jupyter')
await waitForNames(page, official, ['ubuntu20-jupyter:latest'])
await field(page, 'search').fill('')
await waitForNames(page, official, OFFICIAL)
await choose(page, 'sort', '↓')
await waitForNames(page, official, ['ubuntu20-pytorch:2.0', 'ubuntu20-tensorflow:2.12', 'ubuntu20-jupyter:latest', 'ubuntu22-cuda:12.0'])
assert.equal(await page.locator(`${official} [data-test=card-ubuntu20-pytorch\\:2\\.0] [data-test=size]`).innerText(), '8GB')
// "use" shows the pull reference and digest.
await page.locator(`${official} [data-test=card-ubuntu20-pytorch\\:2\\.0] [data-test=use]`).click()
await page.locator('[data-test=use-ref]').filter({ hasText: 'ubuntu20-pytorch:2.0' }).waitFor()
assert.match(await page.locator('[data-test=use-digest]').innerText(), /^sha256:[0-9a-f]{64}$/)
await page.keyboard.press('Escape')
// The detail view: versions and platforms.
await page.locator(`${official} [data-test=card-ubuntu20-pytorch\\:2\\.0] [data-test=details]`).click()
await page.locator('[data-test=versions] .el-table__row').first().waitFor()
await page.locator('[data-test=platforms] .el-table__row', { hasText: 'amd64' }).waitFor()
await shot(page, '03-detail')
await page.keyboard.press('Escape')

// 3. The custom tab: an import, with its bars moving, to ready.
step('import to ready')
await page.locator('.el-tabs__item', { hasText: '自定义镜像' }).click()
await page.locator('[data-test=catalog-custom]').waitFor()
await page.locator('[data-test=open-import]').click()
await field(page, 'import-source').fill(env('IMPORT_SOURCE'))
await page.locator('[data-test=import-start]').click()
await page.locator('[data-test=import-progress]').waitFor()
// A sync worker reports one layer, as the seed's importer does.
const layer = await fetch(BASE + env('IMPORT_PROGRESS_PATH'), {
  method: 'PUT',
  headers: { Authorization: `Bearer ${env('WORKER_TOKEN')}`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ 'sha256:1111111111111111111111111111111111111111111111111111111111111111': { status: 'downloading', progress: 40 } }),
})
assert.equal(layer.status, 200, await layer.text())
const bar = page.locator('[data-test=import-bar][role=progressbar], [data-test=import-bar] [role=progressbar]').first()
const seen = []
const deadline = Date.now() + 60000
let layersShown = false
while (Date.now() < deadline) {
  const done = (await page.locator('[data-test=import-status]').innerText()) !== 'importing'
  const value = Number(await bar.getAttribute('aria-valuenow'))
  if (seen.at(-1) !== value) seen.push(value)
  layersShown ||= await page.locator('[data-test=import-layers]').isVisible()
  if (layersShown && seen.length === 2) await shot(page, '04-import-running')
  if (done) break
  await page.waitForTimeout(100)
}
console.log(`portal e2e: import progress seen ${JSON.stringify(seen)}`)
assert.equal(await page.locator('[data-test=import-status]').innerText(), 'ready')
assert.ok(layersShown, 'the per-layer bars never showed')
assert.ok(seen.some((v) => v > 0 && v < 100), `the bar never showed progress between 0 and 100: ${seen}`)
assert.ok(seen.every((v, i) => i === 0 || seen[i - 1] <= v), `progress went backwards: ${seen}`)
assert.equal(seen.at(-1), 100)
await page.waitForTimeout(800) // the bars' width animation
await shot(page, '05-import-ready')
await page.locator('[data-test=import-dialog] .el-dialog__footer button', { hasText: '关闭' }).click()

// 4. A build: the Dockerfile's error inline, then to ready; then it is in my builds.
step('build to ready')
await page.locator('[data-test=open-build]').click()
await field(page, 'build-name').fill('portal-built:1.0')
await field(page, 'build-dockerfile').fill('RUN pip install transformers\n')
expectedRefusal = 400
await page.locator('[data-test=build-submit]').click()
const inline = page.locator('[data-test=build-dialog] .el-form-item__error')
await inline.waitFor()
assert.match(await inline.innerText(), /FROM/)
await shot(page, '06-build-invalid')
expectedRefusal = null
await field(page, 'build-dockerfile').fill('FROM ubuntu20-pytorch:2.0\nRUN pip install transformers\n')
await page.locator('[data-test=build-submit]').click()
await page.locator('[data-test=build-status]', { hasText: 'succeeded' }).waitFor({ timeout: 60000 })
await shot(page, '07-build-ready')
await page.locator('[data-test=build-dialog] .el-dialog__footer button', { hasText: '关闭' }).click()
await page.locator('[data-test=catalog-custom] [data-test=image-name]', { hasText: 'portal-built:1.0' }).waitFor()
assert.ok((await names(page, '[data-test=catalog-custom]')).includes(env('IMPORT_NAME')))
await page.locator('.el-tabs__item', { hasText: '我的构建' }).click()
await page.locator('[data-test=builds] .el-table__row', { hasText: 'succeeded' }).waitFor()
// Labels switch to English.
await page.locator('[data-test=locale] label', { hasText: 'EN' }).click()
await page.locator('.el-tabs__item', { hasText: 'My builds' }).waitFor()
await shot(page, '08-my-builds-en')
await page.locator('[data-test=locale] label', { hasText: '中文' }).click()

// 5. Admin: a publication change that sticks across a reload.
step('admin status change')
const admin = await newPage()
await signInWith(admin, env('ADMIN_TOKEN'))
await waitForNames(admin, official, OFFICIAL)
await choose(admin, 'publication-ubuntu22-cuda\\:12\\.0', '下线')
await admin.locator('.el-message--success').waitFor()
await admin.reload()
await waitForNames(admin, official, OFFICIAL)
assert.match(await admin.locator('[data-test=publication-ubuntu22-cuda\\:12\\.0]').innerText(), /下线/)
await shot(admin, '09-admin-offline')
// An edit, shown on the card.
await admin.locator(`${official} [data-test=card-ubuntu20-jupyter\\:latest] [data-test=edit]`).click()
await admin.locator('[data-test=edit-form] textarea').fill('JupyterLab, edited in the portal')
await admin.locator('[data-test=save]').click()
await admin.locator(`${official} [data-test=card-ubuntu20-jupyter\\:latest]`, { hasText: 'JupyterLab, edited in the portal' }).waitFor()
// A delete, after its confirmation.
await admin.locator('.el-tabs__item', { hasText: '自定义镜像' }).click()
const importedCard = admin.locator('[data-test=catalog-custom] .image-card', { hasText: env('IMPORT_NAME') })
await importedCard.locator('[data-test=delete]').click()
await admin.locator('.el-message-box').waitFor()
await shot(admin, '10-admin-delete-confirm')
await admin.locator('.el-message-box__btns .el-button--primary').click()
await importedCard.waitFor({ state: 'detached' })
// Users no longer see the offline image.
await page.goto(BASE + '/')
await waitForNames(page, official, OFFICIAL.filter((n) => n !== 'ubuntu22-cuda:12.0'))

// 6. An expired token: back to sign-in, with the API's words.
step('expired token')
expectedRefusal = 401
const expired = await newPage()
await signInWith(expired, env('EXPIRED_TOKEN'))
await expired.locator('[data-test=signin-message]', { hasText: 'the bearer token has expired' }).waitFor()
await shot(expired, '11-expired')
expectedRefusal = null

await browser.close()
assert.deepEqual(consoleErrors, [], 'console errors')
console.log(`portal e2e: all steps passed; screenshots in ${SHOTS}`)
