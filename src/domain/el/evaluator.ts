/**
 * Evaluates parsed EL. Operators follow DataArts' examples: `+` joins text when either side is a
 * string (`"obs://x/" + DateUtil.format(…)`) and adds numbers otherwise; `/` between whole numbers
 * divides without remainder (`7 / 2` is 3), otherwise exactly; `&&`, `||` and `?:` read booleans as
 * Java EL coerces them (null and "" are false, a string is true only when it is "true").
 */
import { builtinMethod, builtinObject, builtinProperty, checkedResult, type ElContext } from './builtins.js';
import { ElError } from './el-error.js';
import { EL_LIMITS, type BinaryOperator, type ElNode, type TemplatePart } from './parser.js';
import { ElDate, isElObject, preview, toText, type ElValue } from './values.js';

const NUMERIC_TEXT = /^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$/;

function toNumber(value: ElValue, at: number): number {
  if (value === null) return 0;
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && NUMERIC_TEXT.test(value)) return Number(value);
  throw new ElError(`${preview(value)} is not a number`, at);
}

function toBoolean(value: ElValue, at: number): boolean {
  if (value === null) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') return value === 'true';
  throw new ElError(`${preview(value)} is not a boolean`, at);
}

function isEmpty(value: ElValue): boolean {
  if (value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isElObject(value)) return Object.keys(value).length === 0;
  return false;
}

function equals(a: ElValue, b: ElValue, at: number): boolean {
  if (a === null || b === null) return a === b;
  if (a instanceof ElDate || b instanceof ElDate) {
    return a instanceof ElDate && b instanceof ElDate && a.epochMs === b.epochMs;
  }
  if (typeof a === 'number' || typeof b === 'number') {
    const x = typeof a === 'string' && !NUMERIC_TEXT.test(a) ? NaN : toNumberOrNaN(a, at);
    const y = typeof b === 'string' && !NUMERIC_TEXT.test(b) ? NaN : toNumberOrNaN(b, at);
    return x === y;
  }
  if (typeof a === 'boolean' || typeof b === 'boolean') return toBoolean(a, at) === toBoolean(b, at);
  if (typeof a === 'string' && typeof b === 'string') return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

function toNumberOrNaN(value: ElValue, at: number): number {
  try {
    return toNumber(value, at);
  } catch {
    return NaN;
  }
}

function compare(a: ElValue, b: ElValue, at: number): number {
  if (a instanceof ElDate && b instanceof ElDate) return a.epochMs - b.epochMs;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  return toNumber(a, at) - toNumber(b, at);
}

function arithmetic(op: BinaryOperator, a: ElValue, b: ElValue, at: number): number {
  const x = toNumber(a, at);
  const y = toNumber(b, at);
  switch (op) {
    case '-':
      return x - y;
    case '*':
      return x * y;
    case '/':
      if (y === 0) throw new ElError('division by zero', at);
      return Number.isInteger(x) && Number.isInteger(y) ? Math.trunc(x / y) : x / y;
    case '%':
      if (y === 0) throw new ElError('division by zero', at);
      return x % y;
    default:
      return x + y;
  }
}

export class Evaluator {
  constructor(private readonly ctx: ElContext) {}

  evaluate(node: ElNode): ElValue {
    return checkedResult(this.value(node));
  }

  /** A template's text: literal parts as they are, each expression's value as text. */
  render(parts: readonly TemplatePart[]): string {
    let out = '';
    for (const part of parts) {
      out += part.kind === 'text' ? part.text : toText(this.evaluate(part.node), this.ctx.zone);
      if (out.length > EL_LIMITS.maxStringLength) {
        throw new ElError(`the value becomes longer than ${EL_LIMITS.maxStringLength} characters`);
      }
    }
    return out;
  }

  private value(node: ElNode): ElValue {
    switch (node.kind) {
      case 'literal':
        return node.value;
      case 'name':
        // Only DateUtil.x, Job.y …: a bare name is an object that has no value of its own.
        builtinObject(node.name, node.at);
        throw new ElError(`'${node.name}' is an object: use its properties or methods`, node.at);
      case 'member':
        if (node.object.kind === 'name')
          return builtinProperty(node.object.name, node.property, node.at)(this.ctx);
        return this.member(this.evaluate(node.object), node.property, node.at);
      case 'index':
        return this.member(this.evaluate(node.object), this.evaluate(node.index), node.at);
      case 'call': {
        const { method } = calledMethod(node);
        const args = node.args.map((arg) => this.evaluate(arg));
        try {
          return method.call(args, this.ctx);
        } catch (error) {
          if (error instanceof ElError && error.position === undefined)
            throw new ElError(error.message, node.at);
          throw error;
        }
      }
      case 'unary': {
        const operand = this.evaluate(node.operand);
        if (node.op === 'empty') return isEmpty(operand);
        if (node.op === '!') return !toBoolean(operand, node.at);
        return -toNumber(operand, node.at);
      }
      case 'conditional':
        return toBoolean(this.evaluate(node.test), node.at)
          ? this.evaluate(node.then)
          : this.evaluate(node.otherwise);
      case 'binary':
        return this.binary(node.op, node.left, node.right, node.at);
    }
  }

  private binary(op: BinaryOperator, leftNode: ElNode, rightNode: ElNode, at: number): ElValue {
    if (op === '&&') return toBoolean(this.evaluate(leftNode), at) && toBoolean(this.evaluate(rightNode), at);
    if (op === '||') return toBoolean(this.evaluate(leftNode), at) || toBoolean(this.evaluate(rightNode), at);
    const a = this.evaluate(leftNode);
    const b = this.evaluate(rightNode);
    switch (op) {
      case '==':
        return equals(a, b, at);
      case '!=':
        return !equals(a, b, at);
      case '<':
        return compare(a, b, at) < 0;
      case '>':
        return compare(a, b, at) > 0;
      case '<=':
        return compare(a, b, at) <= 0;
      case '>=':
        return compare(a, b, at) >= 0;
      case '+':
        if (typeof a === 'string' || typeof b === 'string') {
          const x = toText(a, this.ctx.zone);
          const y = toText(b, this.ctx.zone);
          if (x.length + y.length > EL_LIMITS.maxStringLength) {
            throw new ElError(`a string longer than ${EL_LIMITS.maxStringLength} characters`, at);
          }
          return x + y;
        }
        return arithmetic(op, a, b, at);
      default:
        return arithmetic(op, a, b, at);
    }
  }

  /** `.name` or `[key]` on a JSON value (from JSONUtil.parse/path, StringUtil.split). */
  private member(target: ElValue, key: ElValue, at: number): ElValue {
    if (Array.isArray(target)) {
      const index =
        typeof key === 'number' ? key : typeof key === 'string' && /^[0-9]+$/.test(key) ? Number(key) : NaN;
      if (!Number.isInteger(index))
        throw new ElError(`an array index must be a whole number, not ${preview(key)}`, at);
      const items = target as readonly ElValue[];
      if (index < 0 || index >= items.length) {
        throw new ElError(`index ${index} is out of range (the array has ${items.length} items)`, at);
      }
      return items[index] ?? null;
    }
    if (isElObject(target)) {
      if (typeof key !== 'string' && typeof key !== 'number') {
        throw new ElError(`a property name must be a string, not ${preview(key)}`, at);
      }
      const name = String(key);
      return Object.prototype.hasOwnProperty.call(target, name) ? (target[name] ?? null) : null;
    }
    throw new ElError(`${preview(target)} has no property ${preview(key)}`, at);
  }
}

/**
 * The checks that need no values: every name is a known object, every `Object.member` a known
 * property or method, every call has a valid number of arguments. Evaluation makes the same checks;
 * this lets a stored value be refused when it is saved rather than when a script runs.
 */
/** The built-in method a call names, with its argument count checked (evaluation and validation). */
function calledMethod(node: Extract<ElNode, { kind: 'call' }>) {
  const callee = node.callee;
  if (callee.kind !== 'member' || callee.object.kind !== 'name') {
    throw new ElError('only methods of DateUtil, StringUtil, JSONUtil, Env and Job can be called', node.at);
  }
  const objectName = callee.object.name;
  const method = builtinMethod(objectName, callee.property, callee.at);
  const [min, max] = method.arity;
  if (node.args.length < min || node.args.length > max) {
    const expected = min === max ? `${min}` : `${min} to ${max}`;
    throw new ElError(
      `${objectName}.${callee.property} takes ${expected} argument${max === 1 ? '' : 's'}, not ${node.args.length}`,
      node.at,
    );
  }
  return { method };
}

export function validateNode(node: ElNode): void {
  switch (node.kind) {
    case 'literal':
      return;
    case 'name':
      builtinObject(node.name, node.at);
      throw new ElError(`'${node.name}' is an object: use its properties or methods`, node.at);
    case 'member':
      if (node.object.kind === 'name') builtinProperty(node.object.name, node.property, node.at);
      else validateNode(node.object);
      return;
    case 'index':
      validateNode(node.object);
      validateNode(node.index);
      return;
    case 'call': {
      calledMethod(node);
      node.args.forEach(validateNode);
      return;
    }
    case 'unary':
      validateNode(node.operand);
      return;
    case 'binary':
      validateNode(node.left);
      validateNode(node.right);
      return;
    case 'conditional':
      validateNode(node.test);
      validateNode(node.then);
      validateNode(node.otherwise);
      return;
  }
}
