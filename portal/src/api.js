// The berth API as the portal calls it: the bearer token, the envelopes, and errors in
// the API's own words. A 401 signs the portal out with the API's message.
import { reactive } from 'vue'

const KEY = 'berth.token'

export const session = reactive({
  token: sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '',
  demo: false,
  message: '',
})

export function signIn(token, { remember = false, demo = false } = {}) {
  session.token = token
  session.demo = demo
  session.message = ''
  sessionStorage.setItem(KEY, token)
  if (remember) localStorage.setItem(KEY, token)
}

export function signOut(message = '') {
  session.token = ''
  session.message = message
  sessionStorage.removeItem(KEY)
  localStorage.removeItem(KEY)
}

/** Who the token names (its claims; the API checks the signature). */
export function claims() {
  try {
    const part = session.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(atob(part))
  } catch {
    return {}
  }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

/** Calls the API; resolves to the envelope's `data` (or the bare body), throws ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let json = null
  try { json = text ? JSON.parse(text) : null } catch { /* not JSON */ }
  if (!res.ok || json?.success === false || (typeof json?.code === 'number' && json.code !== 0)) {
    const message = json?.message || text || `${res.status} ${res.statusText}`
    if (res.status === 401) signOut(message)
    throw new ApiError(res.status, message)
  }
  if (json && 'data' in json && ('code' in json || 'success' in json)) return json.data
  return json
}

/** The demo session, when the app runs in demo mode (null otherwise). */
export async function demoSession() {
  try {
    const res = await fetch('/portal/session')
    return res.ok ? (await res.json()).data : null
  } catch {
    return null
  }
}

export function formatSize(bytes) {
  if (!bytes) return '-'
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let v = bytes, i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  const shown = v >= 10 || i === 0 ? Math.round(v) : Number(v.toFixed(1))
  return `${shown}${units[i]}`
}
