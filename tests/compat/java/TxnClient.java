import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactions with the Java client. Commits "c1","c2", aborts "a1" (flushed first, so it is in the
 * log), commits "c3"; a second producer with the same transactional.id then fences the first, whose
 * commit must fail. Finally a read_committed consumer reads partition 0 to its end offset.
 * Prints "INIT_FAILED <exception>" and exits if initTransactions fails, "FENCED" when fenced,
 * then one "READ value" line per record read.
 * Args: bootstrap topic transactionalId
 */
public final class TxnClient {
    private static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    private static void commit(KafkaProducer<String, String> producer, String topic, String value) throws Exception {
        producer.beginTransaction();
        producer.send(new ProducerRecord<>(topic, 0, null, value)).get();
        producer.commitTransaction();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: TxnClient <bootstrap> <topic> <transactionalId>");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        String txnId = args[2];
        KafkaProducer<String, String> first = producer(bootstrap, txnId);
        try {
            first.initTransactions();
        } catch (KafkaException e) {
            System.out.println("INIT_FAILED " + e.getClass().getSimpleName());
            System.out.flush();
            first.close(Duration.ZERO);
            return;
        }
        commit(first, topic, "c1");
        commit(first, topic, "c2");
        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, 0, null, "a1")).get();
        first.abortTransaction();
        commit(first, topic, "c3");
        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, 0, null, "zombie")).get();
        try (KafkaProducer<String, String> second = producer(bootstrap, txnId)) {
            second.initTransactions();
            try {
                first.commitTransaction();
                System.out.println("NOT_FENCED");
            } catch (ProducerFencedException e) {
                System.out.println("FENCED");
            }
            commit(second, topic, "c4");
        }
        first.close(Duration.ZERO);

        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.assign(Collections.singletonList(tp));
            consumer.seekToBeginning(Collections.singletonList(tp));
            Map<TopicPartition, Long> end = consumer.endOffsets(Collections.singletonList(tp));
            System.out.println("END " + end.get(tp));
            long deadline = System.currentTimeMillis() + 30000;
            List<String> values = new ArrayList<>();
            while (consumer.position(tp) < end.get(tp) && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    System.out.println("READ " + r.value());
                }
            }
        }
        System.out.flush();
    }
}
