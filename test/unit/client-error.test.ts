/**
 * The method of a request node:http's parser refused, read from the chunk it was parsing: a HEAD must
 * get no body in the raw error response, or the client reads the body as the start of the next
 * response ("Data after Connection: close").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refusedRequestMethod } from '../../src/http/error-handler.js';

/** A chunk and the offset of the refused byte (the first byte ≥ 0x80 in the URL). */
function chunk(text: string): [Buffer, number] {
  const packet = Buffer.from(text, 'latin1');
  return [packet, packet.indexOf(0xff)];
}

describe('refusedRequestMethod', () => {
  it('reads the method of a request line at the start of the chunk', () => {
    assert.equal(
      refusedRequestMethod(...chunk('HEAD /v1/p/scripts/\xff HTTP/1.1\r\nHost: x\r\n\r\n')),
      'HEAD',
    );
    assert.equal(refusedRequestMethod(...chunk('GET /v1/p/scripts/\xff HTTP/1.1\r\nHost: x\r\n\r\n')), 'GET');
  });

  it('finds the refused request after the end of the previous one in the same chunk', () => {
    // A kept-alive connection: the last chunk of the previous request's chunked body, then the next request.
    assert.equal(
      refusedRequestMethod(...chunk('0\r\n\r\nHEAD /v1/p/scripts/\xff HTTP/1.1\r\nHost: x\r\n\r\n')),
      'HEAD',
    );
    // A pipelined request before it: the last request line before the error is the refused one.
    const pipelined = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /v1/p/\xff HTTP/1.1\r\nHost: x\r\n\r\n';
    assert.equal(refusedRequestMethod(...chunk(pipelined)), 'HEAD');
    // The rest of the previous request's body (answered before it was read), no line break after it.
    const afterBody = `${' '.repeat(3000)}}HEAD /v1/p/scripts/\xff HTTP/1.1\r\nHost: x\r\n\r\n`;
    assert.equal(refusedRequestMethod(...chunk(afterBody)), 'HEAD');
  });

  it('reads the method when the size limit stops the parser at the end of the target or in the version', () => {
    const target = `HEAD /${'a'.repeat(20_000)}`;
    const packet = Buffer.from(`${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');
    assert.equal(refusedRequestMethod(packet, target.length), 'HEAD');
    assert.equal(refusedRequestMethod(packet, target.length + 4), 'HEAD');
    // Uppercase leftovers of a previous body before it do not pass for the method.
    const after = Buffer.from(`ABC ${target} HTTP/1.1\r\n`, 'latin1');
    assert.equal(refusedRequestMethod(after, after.indexOf(' HTTP')), 'HEAD');
  });

  it('reads the request line before a refused header', () => {
    const text = '0\r\n\r\nHEAD /v1/p/scripts HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\r\n\r\n';
    const packet = Buffer.from(text, 'latin1');
    assert.equal(refusedRequestMethod(packet, packet.indexOf(0x01)), 'HEAD');
  });

  it('ignores request lines after the point of the error', () => {
    const [packet] = chunk('GET /a/\xff HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n');
    assert.equal(refusedRequestMethod(packet, packet.indexOf(0xff)), 'GET');
  });

  it('is undefined when the request line is not in the chunk', () => {
    const packet = Buffer.from('Host: x\r\nX-Bad: \x01\r\n\r\n', 'latin1');
    assert.equal(refusedRequestMethod(packet, packet.indexOf(0x01)), undefined);
  });
});

describe('refusedRequestMethod on the largest chunks', () => {
  it('reads the request line above a refused header of 65,000 uppercase letters', () => {
    // Such a line is where a backtracking pattern (an uppercase run before a space) turns quadratic.
    const packet = Buffer.from(`GET /x HTTP/1.1\r\nX: ${'A'.repeat(65_000)}`, 'latin1');
    assert.equal(refusedRequestMethod(packet, packet.length - 1), 'GET');
  });
});
