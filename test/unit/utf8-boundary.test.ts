/** Live logs cut byte ranges to whole UTF-8 characters (services/instance-log-service.ts). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { completeUtf8Length } from '../../src/services/instance-log-service.js';

it('keeps whole characters and drops a character cut at the end', () => {
  const text = Buffer.from('aé日😀');
  // Every prefix: the kept part decodes without a replacement character and loses at most 3 bytes.
  for (let end = 0; end <= text.length; end++) {
    const kept = completeUtf8Length(text.subarray(0, end));
    assert.ok(kept <= end && end - kept <= 3, `prefix ${end}: kept ${kept}`);
    assert.ok(!text.subarray(0, kept).toString('utf8').includes('\uFFFD'), `prefix ${end}`);
  }
  // The boundaries themselves are kept whole.
  for (const end of [0, 1, 3, 6, 10]) assert.equal(completeUtf8Length(text.subarray(0, end)), end);
  // A cut character is dropped: é cut after its lead, 日 after 1 and 2 bytes, 😀 after 1, 2 and 3.
  assert.equal(completeUtf8Length(text.subarray(0, 2)), 1);
  assert.equal(completeUtf8Length(text.subarray(0, 4)), 3);
  assert.equal(completeUtf8Length(text.subarray(0, 5)), 3);
  for (const end of [7, 8, 9]) assert.equal(completeUtf8Length(text.subarray(0, end)), 6);
});

it('leaves bytes that are not UTF-8 as they are', () => {
  assert.equal(completeUtf8Length(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80])), 5);
  assert.equal(completeUtf8Length(Buffer.from([0x41, 0xff])), 2);
});
