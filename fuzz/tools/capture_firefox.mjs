// Capture real Firefox data-channel SDP (offer from one RTCPeerConnection, answer
// from a second) for the parser tests and the sdp_fuzzer seed corpus.
// Run through fuzz/tools/capture.sh, which isolates it in a private network
// namespace with a default route (Firefox gathers nothing without one).
// Usage: node capture_firefox.mjs <corpus_dir>
// Writes <corpus_dir>/sdp/firefox_offer.sdp and firefox_answer.sdp.
// Debian's /usr/bin/firefox-esr driven by puppeteer-core over WebDriver BiDi.
import puppeteer from 'puppeteer-core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const corpusDir = process.argv[2] ?? '.';
const profile = mkdtempSync(join(tmpdir(), 'rtcmesh-firefox-capture-'));
const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.RTCMESH_FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  userDataDir: profile,
  extraPrefsFirefox: {
    'network.manage-offline-status': false,
    'media.peerconnection.ice.obfuscate_host_addresses': false,  // addresses, not mDNS names
    'media.peerconnection.ice.loopback': true,
  },
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
    a.createDataChannel('chat');
    await a.setLocalDescription(await a.createOffer());
    await gathered(a);
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await gathered(b);
    const out = { offer: a.localDescription.sdp, answer: b.localDescription.sdp, version: navigator.userAgent };
    a.close();
    b.close();
    return out;
  });
  const sdpDir = join(corpusDir, 'sdp');
  mkdirSync(sdpDir, { recursive: true });
  writeFileSync(join(sdpDir, 'firefox_offer.sdp'), result.offer);
  writeFileSync(join(sdpDir, 'firefox_answer.sdp'), result.answer);
  console.log(result.version);
  console.log(result.offer);
  console.log(result.answer);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
