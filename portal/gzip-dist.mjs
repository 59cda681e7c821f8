// Writes a .gz beside every compressible file of dist/ (when it is smaller), which the
// portal component serves to clients that accept gzip.
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync, constants } from 'node:zlib'

const compressible = /\.(html|js|css|svg|json|txt)$/
let raw = 0, packed = 0
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) { walk(path); continue }
    if (!compressible.test(name)) continue
    const bytes = readFileSync(path)
    const gz = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION })
    if (gz.length < bytes.length) {
      writeFileSync(path + '.gz', gz)
      raw += bytes.length; packed += gz.length
    }
  }
}
walk('dist')
console.log(`gzip: ${raw} bytes -> ${packed} bytes`)
