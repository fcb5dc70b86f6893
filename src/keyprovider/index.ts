export { KeyUnwrapper, type KeyUnwrapperDeps } from './unwrap';
export { parseAnnotationPacket, type AnnotationPacket, PACKET_VERSION } from './packet';
export {
  encodeKeyUnwrapResults,
  encodeKeyWrapResults,
  buildKeyUnwrapRequest,
  parseKeyUnwrapRequest,
  parseKeyUnwrapResults,
  parseKeyWrapRequest,
  type KeyWrapRequest,
} from './protocol';
