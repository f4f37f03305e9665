// Heap the given modules take when imported from .mpy files under MicroPython's 32-bit WebAssembly
// port (npm @micropython/micropython-webassembly-pyscript): node bench/wasm_modules.mjs LIBDIR a,b,c
// prints one "<module> <bytes>" line per module (with what it imports first) and "TOTAL <bytes>".
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";
import fs from "fs";
import path from "path";

const [libdir, modlist] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ heapsize: 4 * 1024 * 1024, stdout: (line) => { out += line + "\n"; },
                                   linebuffer: true });

function copy(src, dst) {
  for (const name of fs.readdirSync(src)) {
    const s = path.join(src, name);
    const d = dst + "/" + name;
    if (fs.statSync(s).isDirectory()) {
      try { mp.FS.mkdir(d); } catch (e) { /* exists */ }
      copy(s, d);
    } else {
      mp.FS.writeFile(d, fs.readFileSync(s));
    }
  }
}

try { mp.FS.mkdir("/lib"); } catch (e) { /* exists */ }
copy(libdir, "/lib");
mp.runPython(`
import gc, sys
sys.path.insert(0, "/lib")
gc.collect()
base = gc.mem_alloc()
for m in "${modlist}".split(","):
    gc.collect()
    a = gc.mem_alloc()
    __import__(m)
    gc.collect()
    print(m, gc.mem_alloc() - a)
gc.collect()
print("TOTAL", gc.mem_alloc() - base)
`);
process.stdout.write(out);
