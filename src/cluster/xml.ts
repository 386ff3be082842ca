/**
 * A small element tree over fast-xml-parser, for the documents Pacemaker's
 * tools print (crm_mon, cibadmin). Keeps order and ancestry, which the CIB
 * updates need to address an element by its path of ids.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export interface XmlElement {
  readonly tag: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly XmlElement[];
  readonly text: string;
  readonly parent: XmlElement | undefined;
}

type Raw = Record<string, unknown> & { ':@'?: Record<string, string> };

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

function build(raw: Raw, parent: XmlElement | undefined): XmlElement | undefined {
  const tag = Object.keys(raw).find((k) => k !== ':@');
  if (tag === undefined || tag === '#text') return undefined;
  const el: { tag: string; attrs: Record<string, string>; children: XmlElement[]; text: string; parent: XmlElement | undefined } = {
    tag,
    attrs: { ...(raw[':@'] ?? {}) },
    children: [],
    text: '',
    parent,
  };
  for (const child of (raw[tag] as Raw[]) ?? []) {
    if ('#text' in child) el.text += String(child['#text']);
    else {
      const c = build(child, el);
      if (c) el.children.push(c);
    }
  }
  return el;
}

/** Parses a document and returns its root element; throws on malformed XML. */
export function parseXml(xml: string): XmlElement {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new Error(`malformed XML at line ${valid.err.line}: ${valid.err.msg}`);
  const doc = parser.parse(xml) as Raw[];
  for (const raw of doc) {
    const el = build(raw, undefined);
    if (el) return el;
  }
  throw new Error('no XML element in the document');
}

/** Every descendant (depth first, document order) that matches. */
export function findAll(root: XmlElement, pred: (e: XmlElement) => boolean): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement) => {
    for (const c of e.children) {
      if (pred(c)) out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

export function findFirst(root: XmlElement, pred: (e: XmlElement) => boolean): XmlElement | undefined {
  return findAll(root, pred)[0];
}

export const byTag = (tag: string) => (e: XmlElement) => e.tag === tag;
export const byTagId = (tag: string, id: string) => (e: XmlElement) => e.tag === tag && e.attrs.id === id;

export { xmlEscape } from '../ocf/xml-escape';
