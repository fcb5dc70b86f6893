/**
 * JSON.parse keeps the last of duplicate member names without a word, so a sealed secret
 * could carry `"type":"vault", …, "type":"envelope"` and mean different things to different
 * parsers (upstream's serde refuses duplicate fields). This finds such duplicates.
 */

interface ObjectFrame {
  readonly keys: Set<string>;
  expectingKey: boolean;
}

/** Frames of the containers being scanned; `undefined` stands for an array. */
type Frame = ObjectFrame | undefined;

/**
 * The first member name that appears twice in one object of `text`, or undefined. `text` must
 * be valid JSON (call after JSON.parse succeeded). Names are compared decoded, so `"a"` and
 * `"\u0061"` are the same name. Iterative and linear: nesting depth costs no stack.
 */
export function findDuplicateMemberName(text: string): string | undefined {
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const char = text.charCodeAt(i);
    const top = stack.length === 0 ? undefined : stack[stack.length - 1];
    switch (char) {
      case 0x7b /* { */:
        stack.push({ keys: new Set(), expectingKey: true });
        i++;
        break;
      case 0x5b /* [ */:
        stack.push(undefined);
        i++;
        break;
      case 0x7d /* } */:
      case 0x5d /* ] */:
        stack.pop();
        i++;
        break;
      case 0x2c /* , */:
        if (top !== undefined) top.expectingKey = true;
        i++;
        break;
      case 0x22 /* " */: {
        const end = endOfString(text, i);
        if (top !== undefined && top.expectingKey) {
          const name = JSON.parse(text.slice(i, end)) as string;
          if (top.keys.has(name)) return name;
          top.keys.add(name);
          top.expectingKey = false;
        }
        i = end;
        break;
      }
      default:
        // Whitespace, ':', numbers and literals carry no member names.
        i++;
    }
  }
  return undefined;
}

/** Index just past the closing quote of the string starting at `start`. */
function endOfString(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const char = text.charCodeAt(i);
    if (char === 0x5c /* \ */) i += 2;
    else if (char === 0x22) return i + 1;
    else i++;
  }
  return i;
}
