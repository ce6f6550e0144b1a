import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Group member for the compatibility tests: prints "ASSIGNED p,p,..." on every assignment and
 * "REC partition offset value" per record, committing synchronously after each poll so a record is
 * handed to exactly one member. Runs until STOPFILE exists or DEADLINE_MS passes.
 * Args: bootstrap topic group stopfile deadlineMs
 */
public final class CompatConsumer {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: CompatConsumer <bootstrap> <topic> <group> <stopfile> <deadlineMs>");
            System.exit(2);
        }
        Path stop = Path.of(args[3]);
        long deadline = System.currentTimeMillis() + Long.parseLong(args[4]);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(args[1]), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    consumer.commitSync();
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    StringBuilder sb = new StringBuilder("ASSIGNED");
                    for (TopicPartition tp : consumer.assignment()) {
                        sb.append(' ').append(tp.partition());
                    }
                    System.out.println(sb);
                    System.out.flush();
                }
            });
            while (System.currentTimeMillis() < deadline && !Files.exists(stop)) {
                ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(200));
                if (recs.isEmpty()) {
                    continue;
                }
                StringBuilder out = new StringBuilder();
                for (ConsumerRecord<String, String> r : recs) {
                    out.append("REC ").append(r.partition()).append(' ').append(r.offset()).append(' ')
                        .append(r.value()).append('\n');
                }
                consumer.commitSync();
                System.out.print(out);
                System.out.flush();
            }
        }
    }
}
