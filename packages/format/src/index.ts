export { BYTE_UNITS, type ByteUnit, bytesIn, formatByteRate, formatBytes, type FormatBytesOptions } from "./bytes.ts";
