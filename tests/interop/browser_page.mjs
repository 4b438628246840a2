// The RTCPeerConnection side of the browser interop peers (chromium_peer.mjs,
// firefox_peer.mjs): one page script for both browsers. The node side injects
// it with page.evaluate(`(${pageMain.toString()})()`), so it must not refer to
// anything outside itself. It defines window.__rt (create/offer/answer/send/
// close/drain/selftest, emitted()) and reports events to node in order through
// window.__rtEvent(seq, type, a, b), an exposed function.

export function pageMain() {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let seq = 0;
  const emit = (type, a = null, b = null) => {
    window.__rtEvent(seq++, type, a, b).catch(() => {});
  };
  const b64encode = (buf) => {
    const u = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const b64decode = (s) => {
    const bin = atob(s);
    const u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  };

  const rt = {
    pc: null, dc: null, opts: null, selftestSink: null, closed: false, closedWaiters: [],

    // events emitted so far (node waits for all of them before exiting)
    emitted() { return seq; },

    create(opts) {
      rt.opts = opts;
      const config = { iceServers: opts.iceServers };
      if (opts.relayOnly) config.iceTransportPolicy = 'relay';
      const pc = new RTCPeerConnection(config);
      rt.pc = pc;
      pc.onconnectionstatechange = () => {
        emit('state', pc.connectionState);
        if (pc.connectionState === 'failed') emit('failed');
      };
      if (opts.role === 'answer' && opts.negotiatedId === null) {
        pc.ondatachannel = (e) => rt.attach(e.channel);
      }
    },

    makeChannel() {
      const o = rt.opts;
      const init = { ordered: !o.unordered, protocol: o.protocol };
      if (o.maxRetransmits !== null) init.maxRetransmits = o.maxRetransmits;
      if (o.maxPacketLifeTime !== null) init.maxPacketLifeTime = o.maxPacketLifeTime;
      if (o.negotiatedId !== null) { init.negotiated = true; init.id = o.negotiatedId; }
      rt.attach(rt.pc.createDataChannel(o.label, init));
    },

    attach(dc) {
      if (rt.dc) { emit('log', `ignoring extra data channel ${dc.label}`); return; }
      rt.dc = dc;
      dc.binaryType = 'arraybuffer';
      // Firefox hands ondatachannel a channel that is already open and
      // then fires 'open' on it as well: report it once.
      let reported = false;
      const opened = () => {
        if (reported) return;
        reported = true;
        emit('log', `channel ${dc.label} id=${dc.id} ordered=${dc.ordered} maxRetransmits=${dc.maxRetransmits} ` +
          `maxPacketLifeTime=${dc.maxPacketLifeTime} negotiated=${dc.negotiated} protocol="${dc.protocol}" ` +
          `maxMessageSize=${rt.pc.sctp ? rt.pc.sctp.maxMessageSize : '?'}`);
        emit('open', dc.label, dc.id);
      };
      dc.onopen = opened;
      dc.onclose = () => {
        rt.closed = true;
        for (const w of rt.closedWaiters.splice(0)) w();
        emit('closed');
      };
      dc.onerror = (e) => emit('log', `channel error: ${e.error ? e.error.message : e}`);
      dc.onmessage = (e) => {
        const d = e.data;
        if (rt.opts.echo && dc.readyState === 'open') {
          try { dc.send(d); } catch (err) { emit('log', `echo failed: ${err.message}`); }
        }
        if (rt.selftestSink) { rt.selftestSink(d); return; }
        if (typeof d === 'string') emit('text', d);
        else emit('binary', b64encode(d));
      };
      if (dc.readyState === 'open') opened();
    },

    async gathered(timeoutMs) {
      const pc = rt.pc;
      if (pc.iceGatheringState !== 'complete') {
        await Promise.race([
          new Promise((resolve) => {
            pc.addEventListener('icegatheringstatechange', () => {
              if (pc.iceGatheringState === 'complete') resolve();
            });
          }),
          sleep(timeoutMs).then(() => emit('log', 'ICE gathering did not complete in time; using what we have')),
        ]);
      }
      return pc.localDescription.sdp;
    },

    async offer(opts) {
      rt.create(opts);
      rt.makeChannel();
      await rt.pc.setLocalDescription(await rt.pc.createOffer());
      return rt.gathered(opts.timeout * 1000);
    },

    async acceptAnswer(sdp) {
      await rt.pc.setRemoteDescription({ type: 'answer', sdp });
    },

    async answer(opts, sdp) {
      rt.create(opts);
      await rt.pc.setRemoteDescription({ type: 'offer', sdp });
      if (opts.negotiatedId !== null) rt.makeChannel();
      await rt.pc.setLocalDescription(await rt.pc.createAnswer());
      return rt.gathered(opts.timeout * 1000);
    },

    send(kind, data) {
      const dc = rt.dc;
      if (!dc || dc.readyState !== 'open') return false;
      if (kind === 'binary') dc.send(b64decode(data));
      else dc.send(data);
      return true;
    },

    waitClosed(ms) {
      if (rt.closed) return Promise.resolve(true);
      return Promise.race([new Promise((r) => rt.closedWaiters.push(() => r(true))), sleep(ms).then(() => false)]);
    },

    async drain(ms) {
      const dc = rt.dc;
      const t0 = Date.now();
      while (dc && dc.readyState === 'open' && dc.bufferedAmount > 0 && Date.now() - t0 < ms) await sleep(5);
    },

    // close the channel gracefully (after queued data left), then the connection
    async close() {
      let acked = true;
      const dc = rt.dc;
      if (dc && dc.readyState === 'open') {
        await rt.drain(10000);
        dc.close();
        acked = await rt.waitClosed(5000);
      }
      if (rt.pc) rt.pc.close();
      return acked;
    },

    randomText(nbytes) {
      // printable ASCII (weighted) plus 2-, 3- and 4-byte UTF-8 characters
      const pool = [];
      for (let c = 0x20; c < 0x7f; c++) for (let k = 0; k < 4; k++) pool.push([String.fromCharCode(c), 1]);
      pool.push(['\u00e9', 2], ['\u00df', 2], ['\u00f8', 2], ['\u20ac', 3], ['\u4e2d', 3], ['\u2713', 3],
        ['\u{1F600}', 4], ['\u{1F680}', 4]);
      const rnd = new Uint32Array(Math.max(16, nbytes));
      crypto.getRandomValues(rnd.subarray(0, Math.min(rnd.length, 16384)));
      for (let i = 16384; i < rnd.length; i += 16384) crypto.getRandomValues(rnd.subarray(i, Math.min(rnd.length, i + 16384)));
      const parts = [];
      let left = nbytes;
      let ri = 0;
      while (left > 0) {
        let [ch, n] = pool[rnd[ri++] % pool.length];
        if (n > left) { ch = String.fromCharCode(0x21 + (rnd[ri++ % rnd.length] % 94)); n = 1; }
        parts.push(ch);
        left -= n;
      }
      const s = parts.join('');
      if (new TextEncoder().encode(s).length !== nbytes) throw new Error('internal: random text has the wrong size');
      return s;
    },

    randomBytes(n) {
      const u = new Uint8Array(n);
      for (let i = 0; i < n; i += 65536) crypto.getRandomValues(u.subarray(i, Math.min(n, i + 65536)));
      return u;
    },

    // Sends each case and waits for its echo. On a partially reliable channel
    // (max-retransmits / max-packet-life-time) a message may legitimately be
    // lost, so a case is re-sent with fresh content (up to 5 attempts, counted
    // as "resent" in the result); anything that comes back must still match
    // one of the sent messages exactly.
    async selftest(timeoutMs) {
      const dc = rt.dc;
      const o = rt.opts;
      const partial = o.maxRetransmits !== null || o.maxPacketLifeTime !== null;
      const attempts = partial ? 5 : 1;
      const attemptMs = partial ? Math.min(timeoutMs, 2000) : timeoutMs;
      const inbox = [];
      let wake = null;
      rt.selftestSink = (d) => { inbox.push(d); if (wake) { const w = wake; wake = null; w(); } };
      const nextMsg = async (ms) => { // resolves null on timeout
        const end = Date.now() + ms;
        while (!inbox.length) {
          if (rt.closed) throw new Error('channel closed during the selftest');
          const left = end - Date.now();
          if (left <= 0) return null;
          await Promise.race([new Promise((r) => { wake = r; }), sleep(Math.min(left, 100))]);
        }
        return inbox.shift();
      };
      const describe = (d) => (typeof d === 'string'
        ? `text of ${new TextEncoder().encode(d).length} B` : `binary of ${d.byteLength} B`);
      const same = (sent, got) => {
        if (typeof sent === 'string') return typeof got === 'string' && got === sent;
        if (typeof got === 'string' || got.byteLength !== sent.length) return false;
        const g = new Uint8Array(got);
        for (let i = 0; i < g.length; i++) if (g[i] !== sent[i]) return false;
        return true;
      };
      const firstDiff = (sent, got) => {
        const g = new Uint8Array(got);
        for (let i = 0; i < g.length; i++) if (g[i] !== sent[i]) return i;
        return -1;
      };
      const maxSize = rt.pc.sctp && rt.pc.sctp.maxMessageSize ? rt.pc.sctp.maxMessageSize : 65536;
      emit('log', `selftest: max message size ${maxSize}, ${partial ? 'partially reliable' : 'reliable'} channel`);
      let checked = 0;
      let resent = 0;
      let late = 0;
      const skipped = [];
      const earlier = []; // payloads of finished cases (late echoes on partial channels)
      const t0 = performance.now();
      const ms = () => Math.round(performance.now() - t0);
      try {
        for (const size of [0, 1, 65536, 262144]) {
          for (const kind of ['text', 'binary']) {
            if (size > maxSize) {
              skipped.push(`${kind}:${size}`);
              emit('log', `selftest: skipping ${kind} of ${size} B (max message size ${maxSize})`);
              continue;
            }
            const sent = [];
            let ok = false;
            for (let attempt = 0; attempt < attempts && !ok; attempt++) {
              const payload = kind === 'text' ? rt.randomText(size) : rt.randomBytes(size);
              sent.push(payload);
              if (attempt > 0) {
                resent++;
                emit('log', `selftest: no echo of ${kind} of ${size} B within ${attemptMs} ms, sending it again`);
              }
              dc.send(payload);
              const end = Date.now() + attemptMs;
              for (;;) {
                const got = await nextMsg(end - Date.now());
                if (got === null) break;
                if (sent.some((p) => same(p, got))) { ok = true; break; }
                if (partial && earlier.some((p) => same(p, got))) { late++; continue; }
                if (kind === 'text' && typeof got !== 'string') throw new Error(`sent text of ${size} B, got back ${describe(got)}`);
                if (kind === 'binary' && typeof got === 'string') throw new Error(`sent binary of ${size} B, got back ${describe(got)}`);
                if (kind === 'binary' && got.byteLength === size) {
                  throw new Error(`sent binary of ${size} B, got back different content (first difference at byte ${firstDiff(payload, got)})`);
                }
                throw new Error(`sent ${kind} of ${size} B, got back different content (${describe(got)})`);
              }
            }
            if (!ok) {
              throw new Error(partial
                ? `no echo of ${kind} of ${size} B after ${attempts} attempts of ${attemptMs} ms`
                : `timed out waiting for the echo of ${kind} of ${size} B`);
            }
            earlier.push(...sent);
            checked++;
            emit('log', `selftest: ${kind} of ${size} B ok (${ms()} ms)`);
          }
        }
        const res = { selftest: 'pass', checked, skipped, resent, seconds: ms() / 1000 };
        if (late) res.late = late;
        if (o.closeAfter) {
          await rt.drain(10000);
          dc.close();
          if (!(await rt.waitClosed(timeoutMs))) throw new Error('local close was not completed in time');
          res.closed = 'local';
        } else if (o.expectRemoteClose) {
          emit('checked', checked);
          if (!(await rt.waitClosed(timeoutMs))) throw new Error('remote did not close the channel in time');
          res.closed = 'remote';
        }
        return res;
      } catch (e) {
        return { selftest: 'fail', reason: e.message, checked, resent };
      }
    },
  };
  window.__rt = rt;
}
