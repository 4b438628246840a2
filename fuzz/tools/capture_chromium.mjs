// Capture real Chromium data-channel SDP (offer from one RTCPeerConnection, answer
// from a second) for the parser tests and the sdp_fuzzer seed corpus.
// Run through fuzz/tools/capture.sh, which isolates it in a private
// network namespace (nothing leaves the machine). Usage: node capture_chromium.mjs <corpus_dir>
// Writes <corpus_dir>/sdp/chromium_*.sdp and the trickled candidate strings to
// <corpus_dir>/candidate/chromium_trickle_<n>.txt.
import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const corpusDir = process.argv[2] ?? '.';
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--allow-loopback-in-peer-connection',
         '--disable-features=WebRtcHideLocalIpsWithMdns'],
});
try {
  const page = await browser.newPage();
  const result = await page.evaluate(async () => {
    // Waits until ICE gathering completes so the SDP carries all candidates.
    const gathered = (pc) => new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
    const a = new RTCPeerConnection();
    const b = new RTCPeerConnection();
    const trickled = [];
    a.addEventListener('icecandidate', (ev) => {
      if (ev.candidate && ev.candidate.candidate) trickled.push(ev.candidate.candidate);
    });
    a.createDataChannel('chat');
    const offerOnly = (await a.createOffer()).sdp;  // before gathering: no candidates
    await a.setLocalDescription();
    await gathered(a);
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await gathered(b);
    // An offer that also carries audio and video sections (kept as other_media).
    const c = new RTCPeerConnection();
    c.addTransceiver('audio');
    c.addTransceiver('video');
    c.createDataChannel('chat');
    const offerAv = (await c.createOffer()).sdp;
    c.close();
    const out = { offer_av: offerAv, offer_nocand: offerOnly, offer: a.localDescription.sdp,
                  answer: b.localDescription.sdp, trickled, version: navigator.userAgent };
    a.close();
    b.close();
    return out;
  });
  const sdpDir = join(corpusDir, 'sdp');
  const candDir = join(corpusDir, 'candidate');
  mkdirSync(sdpDir, { recursive: true });
  mkdirSync(candDir, { recursive: true });
  writeFileSync(join(sdpDir, 'chromium_offer_no_candidates.sdp'), result.offer_nocand);
  writeFileSync(join(sdpDir, 'chromium_offer.sdp'), result.offer);
  writeFileSync(join(sdpDir, 'chromium_offer_audio_video.sdp'), result.offer_av);
  writeFileSync(join(sdpDir, 'chromium_answer.sdp'), result.answer);
  result.trickled.forEach((c, i) => {
    writeFileSync(join(candDir, `chromium_trickle_${i}.txt`), c);
    console.log(c);
  });
  console.log(result.version);
  console.log(result.offer);
  console.log(result.answer);
} finally {
  await browser.close();
}
