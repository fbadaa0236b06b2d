import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ResultByteBudget,
  StatementResultBuilder,
  estimatedJsonBytes,
} from '../../src/engines/sql-result.js';

const TEXT = [{ name: 's', type: 'VARCHAR', numeric: false }];

describe('StatementResultBuilder with a ResultByteBudget', () => {
  it('keeps rows until the budget is spent, then refuses every later row, in every statement', () => {
    const budget = new ResultByteBudget(1_000);
    const first = new StatementResultBuilder(100, budget);
    first.setColumns(TEXT);
    for (let i = 0; i < 3; i++) assert.equal(first.addRow(['x'.repeat(200)]), true);
    assert.equal(first.addRow(['x'.repeat(500)]), false);
    // A smaller row after a refused one is refused too: the kept rows are a prefix of the result.
    assert.equal(first.addRow(['x']), false);
    const firstResult = first.build();
    assert.equal(firstResult.rows.length, 3);
    assert.equal(firstResult.truncated, true);

    const second = new StatementResultBuilder(100, budget);
    second.setColumns(TEXT);
    assert.equal(second.addRow(['y']), false);
    assert.deepEqual(second.build().rows, []);
    assert.equal(second.build().truncated, true);
  });

  it('a statement without rows is not truncated even when the budget is spent', () => {
    const budget = new ResultByteBudget(10);
    budget.exhaust();
    const builder = new StatementResultBuilder(100, budget);
    assert.equal(builder.build().truncated, undefined);
  });

  it('the row cap still applies, and exactly maxRows rows are not truncated', () => {
    const budget = new ResultByteBudget(1_000_000);
    const builder = new StatementResultBuilder(2, budget);
    builder.setColumns([{ name: 'n', type: 'BIGINT', numeric: true }]);
    assert.equal(builder.addRow(['1']), true);
    assert.equal(builder.addRow(['2']), true);
    assert.equal(builder.build().truncated, undefined);
    assert.equal(builder.addRow(['3']), false);
    assert.deepEqual(builder.build().rows, [[1], [2]]);
    assert.equal(builder.build().truncated, true);
  });

  it('markTruncated spends the budget for later statements', () => {
    const budget = new ResultByteBudget(1_000);
    new StatementResultBuilder(10, budget).markTruncated();
    assert.equal(budget.remaining, 0);
  });

  it('estimates nested values by their JSON length', () => {
    assert.equal(estimatedJsonBytes('abc'), 5);
    assert.equal(estimatedJsonBytes(null), 4);
    assert.equal(estimatedJsonBytes({ a: [1, 2] }), JSON.stringify({ a: [1, 2] }).length);
  });
});
