// Decodes a dump of Corredor's shared topic with Apache Avro for Java, the
// reference implementation, independently of the Python code that wrote it.
//
//   java -cp "<avro jars>/*" AvroDump.java fingerprints SCHEMAS_DIR
//   java -cp "<avro jars>/*" AvroDump.java decode SCHEMAS_DIR DUMP_FILE
//
// fingerprints: one line per schema file, "<file> <16 hex>": the CRC-64-AVRO
// fingerprint of its Parsing Canonical Form, in the byte order single-object
// encoding puts on the wire (little-endian).
//
// decode: DUMP_FILE has one message per line, "<partition> <offset> <base64
// value>". Every layer is Avro single-object encoding (C3 01, fingerprint,
// datum): the SignedEvent, the Envelope in its `envelope` bytes and the body
// in the envelope's `body` bytes. Each writer schema is found by fingerprint
// among SCHEMAS_DIR/*.avsc; each datum must be read to its last byte. One
// JSON object per message goes to stdout: dates as ISO strings, timestamps as
// epoch milliseconds, bytes as hex. Any message it cannot decode is an error
// (exit 1).

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Instant;
import java.time.LocalDate;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.data.TimeConversions;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;

public class AvroDump {
    private static final GenericData MODEL = new GenericData();

    static {
        MODEL.addLogicalTypeConversion(new TimeConversions.DateConversion());
        MODEL.addLogicalTypeConversion(new TimeConversions.TimestampMillisConversion());
    }

    private static final Map<Long, Schema> BY_FINGERPRINT = new HashMap<>();

    public static void main(String[] args) throws Exception {
        File[] files = new File(args[1]).listFiles((dir, name) -> name.endsWith(".avsc"));
        Arrays.sort(files);
        for (File file : files) {
            Schema schema = new Schema.Parser().parse(file);
            long fp = SchemaNormalization.parsingFingerprint64(schema);
            BY_FINGERPRINT.put(fp, schema);
            if (args[0].equals("fingerprints")) {
                byte[] wire = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fp).array();
                System.out.println(file.getName() + " " + hex(wire));
            }
        }
        if (args[0].equals("decode")) {
            int n = 0;
            for (String line : Files.readAllLines(new File(args[2]).toPath(), StandardCharsets.US_ASCII)) {
                if (line.isBlank()) {
                    continue;
                }
                String[] parts = line.split(" ");
                byte[] value = Base64.getDecoder().decode(parts[2]);
                StringBuilder out = new StringBuilder();
                out.append("{\"partition\":").append(parts[0]);
                out.append(",\"offset\":").append(parts[1]);
                out.append(",\"message\":");
                writeSingleObject(out, value);
                out.append("}");
                System.out.println(out);
                n++;
            }
            System.err.println("decoded " + n + " messages");
        }
    }

    /** {"schema": name, "fingerprint": hex, "datum": ...}, nested layers decoded too. */
    private static void writeSingleObject(StringBuilder out, byte[] data) throws Exception {
        if (data.length < 10 || (data[0] & 0xff) != 0xc3 || data[1] != 0x01) {
            throw new IllegalArgumentException("not Avro single-object encoding");
        }
        long fp = ByteBuffer.wrap(data, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        Schema writer = BY_FINGERPRINT.get(fp);
        if (writer == null) {
            throw new IllegalArgumentException("unknown schema fingerprint " + hex(Arrays.copyOfRange(data, 2, 10)));
        }
        BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(data, 10, data.length - 10, null);
        Object datum = new GenericDatumReader<Object>(writer, writer, MODEL).read(null, decoder);
        if (!decoder.isEnd()) {
            throw new IllegalArgumentException("trailing bytes after " + writer.getFullName());
        }
        out.append("{\"schema\":");
        string(out, writer.getName());
        out.append(",\"fingerprint\":");
        string(out, hex(Arrays.copyOfRange(data, 2, 10)));
        out.append(",\"datum\":");
        write(out, datum, writer.getName());
        out.append("}");
    }

    private static void write(StringBuilder out, Object value, String owner) throws Exception {
        if (value == null) {
            out.append("null");
        } else if (value instanceof GenericRecord record) {
            out.append("{");
            boolean first = true;
            for (Schema.Field field : record.getSchema().getFields()) {
                if (!first) {
                    out.append(",");
                }
                first = false;
                string(out, field.name());
                out.append(":");
                Object v = record.get(field.name());
                boolean nested = (owner.equals("SignedEvent") && field.name().equals("envelope"))
                        || (owner.equals("Envelope") && field.name().equals("body"));
                if (nested && v instanceof ByteBuffer buf && isSingleObject(bytes(buf))) {
                    writeSingleObject(out, bytes(buf));
                } else {
                    write(out, v, record.getSchema().getName());
                }
            }
            out.append("}");
        } else if (value instanceof Map<?, ?> map) {
            out.append("{");
            boolean first = true;
            for (Map.Entry<?, ?> e : map.entrySet()) {
                if (!first) {
                    out.append(",");
                }
                first = false;
                string(out, e.getKey().toString());
                out.append(":");
                write(out, e.getValue(), owner);
            }
            out.append("}");
        } else if (value instanceof List<?> list) {
            out.append("[");
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) {
                    out.append(",");
                }
                write(out, list.get(i), owner);
            }
            out.append("]");
        } else if (value instanceof ByteBuffer buf) {
            string(out, hex(bytes(buf)));
        } else if (value instanceof GenericFixed fixed) {
            string(out, hex(fixed.bytes()));
        } else if (value instanceof LocalDate date) {
            string(out, date.toString());
        } else if (value instanceof Instant instant) {
            out.append(instant.toEpochMilli());
        } else if (value instanceof CharSequence || value instanceof GenericEnumSymbol<?>) {
            string(out, value.toString());
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else {
            throw new IllegalArgumentException("no JSON for " + value.getClass());
        }
    }

    private static boolean isSingleObject(byte[] data) {
        return data.length >= 10 && (data[0] & 0xff) == 0xc3 && data[1] == 0x01;
    }

    private static byte[] bytes(ByteBuffer buf) {
        byte[] copy = new byte[buf.remaining()];
        buf.duplicate().get(copy);
        return copy;
    }

    private static String hex(byte[] data) {
        StringBuilder sb = new StringBuilder();
        for (byte b : data) {
            sb.append(String.format("%02x", b & 0xff));
        }
        return sb.toString();
    }

    private static void string(StringBuilder out, String s) {
        out.append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
