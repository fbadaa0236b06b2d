/**
 * The EL grammar DataArts' examples use, parsed by hand (no `eval`, no `new Function`): a value
 * holds text with `#{expression}` parts; an expression is
 *
 *   conditional := or ('?' conditional ':' conditional)?
 *   or          := and (('||' | 'or') and)*
 *   and         := equality (('&&' | 'and') equality)*
 *   equality    := relation (('==' | '!=' | 'eq' | 'ne') relation)*
 *   relation    := additive (('<' | '>' | '<=' | '>=' | 'lt' | 'gt' | 'le' | 'ge') additive)*
 *   additive    := multiply (('+' | '-') multiply)*
 *   multiply    := unary (('*' | '/' | '%' | 'div' | 'mod') unary)*
 *   unary       := ('-' | '!' | 'not' | 'empty') unary | postfix
 *   postfix     := primary ('.' name | '[' conditional ']' | '(' arguments ')')*
 *   primary     := number | 'string' | "string" | true | false | null | name | '(' conditional ')'
 *
 * Limits keep a hostile value cheap: {@link EL_LIMITS}.
 */
import { ElError } from './el-error.js';

export const EL_LIMITS = {
  /** Characters of one `#{…}` expression. */
  maxExpressionLength: 4_096,
  /** `#{…}` parts in one value. */
  maxExpressionsPerValue: 64,
  /** Nesting of parentheses, calls, indexes, unary and conditional operators. */
  maxDepth: 32,
  /** Syntax nodes of one expression. */
  maxNodes: 1_024,
  /** Characters of any string an expression builds, and of an evaluated value. */
  maxStringLength: 1_048_576,
} as const;

export type BinaryOperator =
  '||' | '&&' | '==' | '!=' | '<' | '>' | '<=' | '>=' | '+' | '-' | '*' | '/' | '%';
export type UnaryOperator = '-' | '!' | 'empty';

export type ElNode =
  | { kind: 'literal'; value: string | number | boolean | null; at: number }
  | { kind: 'name'; name: string; at: number }
  | { kind: 'member'; object: ElNode; property: string; at: number }
  | { kind: 'index'; object: ElNode; index: ElNode; at: number }
  | { kind: 'call'; callee: ElNode; args: ElNode[]; at: number }
  | { kind: 'unary'; op: UnaryOperator; operand: ElNode; at: number }
  | { kind: 'binary'; op: BinaryOperator; left: ElNode; right: ElNode; at: number }
  | { kind: 'conditional'; test: ElNode; then: ElNode; otherwise: ElNode; at: number };

/** A value split into literal text and parsed `#{…}` expressions. */
export type TemplatePart =
  { kind: 'text'; text: string } | { kind: 'expression'; node: ElNode; source: string };

type Token =
  | { kind: 'number'; value: number; at: number }
  | { kind: 'string'; value: string; at: number }
  | { kind: 'name'; value: string; at: number }
  | { kind: 'punct'; value: string; at: number }
  | { kind: 'end'; at: number };

/** A Map, not an object literal: `toString` or `constructor` must not find Object.prototype's. */
const KEYWORD_OPERATORS: ReadonlyMap<string, string> = new Map([
  ['and', '&&'],
  ['or', '||'],
  ['not', '!'],
  ['eq', '=='],
  ['ne', '!='],
  ['lt', '<'],
  ['gt', '>'],
  ['le', '<='],
  ['ge', '>='],
  ['div', '/'],
  ['mod', '%'],
  ['empty', 'empty'],
]);

const PUNCTUATION = [
  '==',
  '!=',
  '<=',
  '>=',
  '&&',
  '||',
  '(',
  ')',
  '[',
  ']',
  '.',
  ',',
  '?',
  ':',
  '+',
  '-',
  '*',
  '/',
  '%',
  '<',
  '>',
  '!',
  '}',
];

class Lexer {
  private current: Token | undefined;

  constructor(
    private readonly text: string,
    public pos: number,
  ) {}

  peek(): Token {
    this.current ??= this.read();
    return this.current;
  }

  next(): Token {
    const token = this.peek();
    this.current = undefined;
    return token;
  }

  private read(): Token {
    const text = this.text;
    while (this.pos < text.length && /\s/.test(text.charAt(this.pos))) this.pos += 1;
    const at = this.pos;
    if (at >= text.length) return { kind: 'end', at };
    const c = text.charAt(at);
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(at, at + 64));
      const source = m?.[0] ?? c;
      this.pos += source.length;
      return { kind: 'number', value: Number(source), at };
    }
    if (c === "'" || c === '"') return this.readString(c, at);
    if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(text.slice(at, at + 256));
      const name = m?.[0] ?? c;
      this.pos += name.length;
      const operator = KEYWORD_OPERATORS.get(name);
      return operator ? { kind: 'punct', value: operator, at } : { kind: 'name', value: name, at };
    }
    for (const p of PUNCTUATION) {
      if (text.startsWith(p, at)) {
        this.pos += p.length;
        return { kind: 'punct', value: p, at };
      }
    }
    throw new ElError(`unexpected character '${c}'`, at);
  }

  /** EL string literals: `\\`, `\'` and `\"` are escapes (plus \n, \t, \r); other text is verbatim. */
  private readString(quote: string, at: number): Token {
    let value = '';
    let i = at + 1;
    for (;;) {
      if (i >= this.text.length) throw new ElError('unterminated string literal', at);
      const c = this.text.charAt(i);
      if (c === quote) break;
      if (c === '\\' && i + 1 < this.text.length) {
        const e = this.text.charAt(i + 1);
        const escaped = e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
        if (e === '\\' || e === "'" || e === '"' || e === 'n' || e === 't' || e === 'r') {
          value += escaped;
          i += 2;
          continue;
        }
      }
      value += c;
      i += 1;
    }
    this.pos = i + 1;
    return { kind: 'string', value, at };
  }
}

class Parser {
  private depth = 0;
  private nodes = 0;

  constructor(private readonly lexer: Lexer) {}

  private node<T extends ElNode>(node: T): T {
    this.nodes += 1;
    if (this.nodes > EL_LIMITS.maxNodes) {
      throw new ElError(`the expression has more than ${EL_LIMITS.maxNodes} parts`, node.at);
    }
    return node;
  }

  private nested<T>(at: number, parse: () => T): T {
    this.depth += 1;
    if (this.depth > EL_LIMITS.maxDepth) {
      throw new ElError(`the expression is nested more than ${EL_LIMITS.maxDepth} levels deep`, at);
    }
    try {
      return parse();
    } finally {
      this.depth -= 1;
    }
  }

  private isPunct(value: string): boolean {
    const t = this.lexer.peek();
    return t.kind === 'punct' && t.value === value;
  }

  private expect(value: string): void {
    const t = this.lexer.next();
    if (t.kind !== 'punct' || t.value !== value) {
      throw new ElError(`expected '${value}' but found ${describe(t)}`, t.at);
    }
  }

  expression(): ElNode {
    const at = this.lexer.peek().at;
    return this.nested(at, () => {
      const test = this.binary(0);
      if (!this.isPunct('?')) return test;
      this.lexer.next();
      const then = this.expression();
      this.expect(':');
      const otherwise = this.expression();
      return this.node({ kind: 'conditional', test, then, otherwise, at });
    });
  }

  private static readonly LEVELS: readonly (readonly string[])[] = [
    ['||'],
    ['&&'],
    ['==', '!='],
    ['<', '>', '<=', '>='],
    ['+', '-'],
    ['*', '/', '%'],
  ];

  private binary(level: number): ElNode {
    const operators = Parser.LEVELS[level];
    if (!operators) return this.unary();
    let left = this.binary(level + 1);
    for (;;) {
      const t = this.lexer.peek();
      if (t.kind !== 'punct' || !operators.includes(t.value)) return left;
      this.lexer.next();
      const right = this.binary(level + 1);
      left = this.node({ kind: 'binary', op: t.value as BinaryOperator, left, right, at: t.at });
    }
  }

  private unary(): ElNode {
    const t = this.lexer.peek();
    if (t.kind === 'punct' && (t.value === '-' || t.value === '!' || t.value === 'empty')) {
      this.lexer.next();
      return this.nested(t.at, () => {
        const operand = this.unary();
        return this.node({ kind: 'unary', op: t.value as UnaryOperator, operand, at: t.at });
      });
    }
    return this.postfix();
  }

  private postfix(): ElNode {
    let node = this.primary();
    for (;;) {
      const t = this.lexer.peek();
      if (t.kind !== 'punct') return node;
      if (t.value === '.') {
        this.lexer.next();
        const name = this.lexer.next();
        if (name.kind !== 'name')
          throw new ElError(`expected a name after '.' but found ${describe(name)}`, name.at);
        node = this.node({ kind: 'member', object: node, property: name.value, at: name.at });
      } else if (t.value === '[') {
        this.lexer.next();
        const index = this.expression();
        this.expect(']');
        node = this.node({ kind: 'index', object: node, index, at: t.at });
      } else if (t.value === '(') {
        this.lexer.next();
        const callee = node;
        const args = this.nested(t.at, () => {
          const list: ElNode[] = [];
          if (this.isPunct(')')) {
            this.lexer.next();
            return list;
          }
          for (;;) {
            list.push(this.expression());
            const sep = this.lexer.next();
            if (sep.kind === 'punct' && sep.value === ')') return list;
            if (sep.kind !== 'punct' || sep.value !== ',') {
              throw new ElError(`expected ',' or ')' but found ${describe(sep)}`, sep.at);
            }
          }
        });
        node = this.node({ kind: 'call', callee, args, at: t.at });
      } else {
        return node;
      }
    }
  }

  private primary(): ElNode {
    const t = this.lexer.next();
    switch (t.kind) {
      case 'number':
        return this.node({ kind: 'literal', value: t.value, at: t.at });
      case 'string':
        return this.node({ kind: 'literal', value: t.value, at: t.at });
      case 'name':
        if (t.value === 'true' || t.value === 'false') {
          return this.node({ kind: 'literal', value: t.value === 'true', at: t.at });
        }
        if (t.value === 'null') return this.node({ kind: 'literal', value: null, at: t.at });
        return this.node({ kind: 'name', name: t.value, at: t.at });
      case 'punct':
        if (t.value === '(') {
          const inner = this.expression();
          this.expect(')');
          return inner;
        }
        throw new ElError(`unexpected ${describe(t)}`, t.at);
      case 'end':
        throw new ElError('the expression ends too early', t.at);
    }
  }
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'end':
      return 'the end of the expression';
    case 'string':
      return 'a string';
    case 'number':
      return `the number ${t.value}`;
    default:
      return `'${t.value}'`;
  }
}

/** Parses one expression (without `#{` `}`), e.g. for tests. */
export function parseExpression(source: string): ElNode {
  if (source.length > EL_LIMITS.maxExpressionLength) {
    throw new ElError(`the expression is longer than ${EL_LIMITS.maxExpressionLength} characters`);
  }
  const lexer = new Lexer(source, 0);
  const node = new Parser(lexer).expression();
  const rest = lexer.next();
  if (rest.kind !== 'end') throw new ElError(`unexpected ${describe(rest)}`, rest.at);
  return node;
}

/** True when the value holds a `#{` (and so is evaluated). */
export function hasExpression(value: string): boolean {
  return value.includes('#{');
}

/**
 * Splits a value into text and `#{…}` expressions. Every `#{` starts an expression that must be
 * closed by a `}` (a `}` inside a string literal does not close it).
 */
export function parseTemplate(value: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < value.length) {
    const start = value.indexOf('#{', i);
    if (start === -1) {
      parts.push({ kind: 'text', text: value.slice(i) });
      break;
    }
    if (start > i) parts.push({ kind: 'text', text: value.slice(i, start) });
    if (parts.filter((p) => p.kind === 'expression').length >= EL_LIMITS.maxExpressionsPerValue) {
      throw new ElError(
        `a value may hold at most ${EL_LIMITS.maxExpressionsPerValue} #{…} expressions`,
        start,
      );
    }
    // The lexer runs over the whole value; the expression is bounded by its length limit.
    const bounded = value.slice(0, start + 2 + EL_LIMITS.maxExpressionLength + 1);
    const lexer = new Lexer(bounded, start + 2);
    let node: ElNode;
    try {
      node = new Parser(lexer).expression();
    } catch (error) {
      if (error instanceof ElError && bounded.length < value.length && !bounded.includes('}', start)) {
        throw new ElError(`the expression is longer than ${EL_LIMITS.maxExpressionLength} characters`, start);
      }
      throw error;
    }
    const close = lexer.next();
    if (close.kind !== 'punct' || close.value !== '}') {
      if (close.kind === 'end' && bounded.length < value.length) {
        throw new ElError(`the expression is longer than ${EL_LIMITS.maxExpressionLength} characters`, start);
      }
      throw new ElError(
        close.kind === 'end' ? "'#{' is not closed by '}'" : `expected '}' but found ${describe(close)}`,
        close.at,
      );
    }
    parts.push({ kind: 'expression', node, source: value.slice(start, lexer.pos) });
    i = lexer.pos;
  }
  return parts;
}
