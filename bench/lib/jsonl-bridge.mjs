// The baseline any user can write: Python in a child process, one JSON object per line each way
// (the Python half is `python bench/peers.py serve`). Calls are promises; many can be in flight
// (the child answers in order). Bytes travel as base64, and a JS function argument becomes a
// callable in Python whose calls come back over the same pipe.
import { spawn } from 'node:child_process';

export class JsonLinesBridge {
  #child;
  #nextId = 1;
  #pending = new Map();
  #functions = new Map();
  #functionIds = new Map();
  #chunks = [];
  #closed;

  constructor(python, script) {
    this.#child = spawn(python, [script, 'serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child.stdout.on('data', (chunk) => this.#onData(chunk));
    this.#closed = new Promise((resolve) => {
      this.#child.on('exit', (code, signal) => {
        const error = new Error(`the Python bridge process exited (code ${code}, signal ${signal})`);
        for (const { reject } of this.#pending.values()) reject(error);
        this.#pending.clear();
        resolve();
      });
    });
    this.#child.on('error', (error) => {
      for (const { reject } of this.#pending.values()) reject(error);
      this.#pending.clear();
    });
  }

  /** Calls the Python function `fn` of the bridge module. */
  call(fn, ...args) {
    return this.#request({ fn, args: args.map((a) => this.#encode(a)) });
  }

  /** Reads a dotted attribute path of the bridge module, e.g. 'holder.attr'. */
  attr(path) {
    return this.#request({ attr: path });
  }

  async close() {
    this.#child.stdin.end();
    await this.#closed;
  }

  #request(message) {
    const id = this.#nextId++;
    message.id = id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#send(message);
    });
  }

  #send(message) {
    this.#child.stdin.write(JSON.stringify(message) + '\n');
  }

  #encode(value) {
    if (typeof value === 'function') {
      let id = this.#functionIds.get(value);
      if (id === undefined) {
        id = this.#functionIds.size + 1;
        this.#functionIds.set(value, id);
        this.#functions.set(id, value);
      }
      return { $fn: id };
    }
    if (ArrayBuffer.isView(value)) {
      return { $b64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
    }
    return value;
  }

  #decode(value) {
    if (value !== null && typeof value === 'object' && typeof value.$b64 === 'string') {
      return Buffer.from(value.$b64, 'base64');
    }
    return value;
  }

  #onData(chunk) {
    let start = 0;
    let newline = chunk.indexOf(10);
    while (newline !== -1) {
      const piece = chunk.subarray(start, newline);
      const line = this.#chunks.length === 0
        ? piece.toString('utf8')
        : Buffer.concat([...this.#chunks, piece]).toString('utf8');
      this.#chunks = [];
      this.#onLine(line);
      start = newline + 1;
      newline = chunk.indexOf(10, start);
    }
    if (start < chunk.length) this.#chunks.push(chunk.subarray(start));
  }

  #onLine(line) {
    const message = JSON.parse(line);
    if (message.cb !== undefined) {
      // Python calls a JS function and waits for this answer before it reads anything else.
      const fn = this.#functions.get(message.cb);
      let reply;
      try {
        reply = { cid: message.cid, ok: this.#encode(fn(...message.args.map((a) => this.#decode(a)))) };
      } catch (error) {
        reply = { cid: message.cid, err: String(error) };
      }
      this.#send(reply);
      return;
    }
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (message.err !== undefined) pending.reject(new Error(message.err));
    else pending.resolve(this.#decode(message.ok));
  }
}
