import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * KIP-447 with the Java client: two consume-transform-produce instances of one group, each with its own
 * transactional.id. The first (the zombie) polls the input, writes its output in a transaction, then stalls
 * past max.poll.interval.ms, so its consumer leaves the group and the second instance takes the partition,
 * processes the same input and commits. The zombie then sends its offsets with the group metadata it had
 * when it polled: the group coordinator must refuse them, so its transaction cannot commit.
 * Prints "INIT_FAILED e" (no transaction coordinator), "TAKEN_OVER", "SUCCESSOR_COMMITTED n",
 * then "ZOMBIE_OFFSETS_REFUSED e" or "ZOMBIE_OFFSETS_ACCEPTED", then "ZOMBIE_COMMIT_FAILED e" or
 * "ZOMBIE_COMMITTED", and "DONE".
 * Args: bootstrap inputTopic outputTopic groupId
 */
public final class TxnZombieConsumer {
    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static KafkaConsumer<String, String> consumer(String bootstrap, String group, int maxPollMs) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
        c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        c.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, Integer.toString(maxPollMs));
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return new KafkaConsumer<>(c);
    }

    private static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    /** Polls until records arrive (at most 40 s); the group join happens inside poll. */
    private static ConsumerRecords<String, String> pollSome(KafkaConsumer<String, String> consumer) {
        long deadline = System.currentTimeMillis() + 40000;
        while (System.currentTimeMillis() < deadline) {
            ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
            if (!records.isEmpty()) {
                return records;
            }
        }
        throw new IllegalStateException("no records within 40 s");
    }

    /** Sends each record's transformed value to the output; returns the offsets to commit. */
    private static Map<TopicPartition, OffsetAndMetadata> transform(
            KafkaProducer<String, String> producer, ConsumerRecords<String, String> records, String output, String who)
            throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<String, String> r : records) {
            producer.send(new ProducerRecord<>(output, 0, r.key(), who + ":" + r.value())).get();
            offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
        }
        return offsets;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: TxnZombieConsumer <bootstrap> <inputTopic> <outputTopic> <groupId>");
            System.exit(2);
        }
        String bootstrap = args[0], input = args[1], output = args[2], group = args[3];
        KafkaProducer<String, String> zombieProducer = producer(bootstrap, group + "-zombie");
        try {
            zombieProducer.initTransactions();
        } catch (KafkaException e) {
            say("INIT_FAILED " + e.getClass().getSimpleName());
            zombieProducer.close(Duration.ZERO);
            return;
        }
        KafkaConsumer<String, String> zombie = consumer(bootstrap, group, 3000);
        zombie.subscribe(Collections.singletonList(input));
        ConsumerRecords<String, String> seen = pollSome(zombie);
        ConsumerGroupMetadata stale = zombie.groupMetadata();
        zombieProducer.beginTransaction();
        Map<TopicPartition, OffsetAndMetadata> zombieOffsets = transform(zombieProducer, seen, output, "zombie");

        // The zombie stalls (no poll): after max.poll.interval.ms its consumer leaves the group, and the
        // successor's join completes with the partition assigned to it.
        try (KafkaConsumer<String, String> successor = consumer(bootstrap, group, 300000);
                KafkaProducer<String, String> successorProducer = producer(bootstrap, group + "-successor")) {
            successorProducer.initTransactions();
            successor.subscribe(Collections.singletonList(input));
            ConsumerRecords<String, String> again = pollSome(successor);
            say("TAKEN_OVER");
            successorProducer.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> offsets = transform(successorProducer, again, output, "successor");
            successorProducer.sendOffsetsToTransaction(offsets, successor.groupMetadata());
            successorProducer.commitTransaction();
            say("SUCCESSOR_COMMITTED " + again.count());

            try {
                zombieProducer.sendOffsetsToTransaction(zombieOffsets, stale);
                say("ZOMBIE_OFFSETS_ACCEPTED");
            } catch (KafkaException e) {
                say("ZOMBIE_OFFSETS_REFUSED " + e.getClass().getSimpleName() + ": " + e.getMessage());
            }
            try {
                zombieProducer.commitTransaction();
                say("ZOMBIE_COMMITTED");
            } catch (KafkaException e) {
                say("ZOMBIE_COMMIT_FAILED " + e.getClass().getSimpleName());
                zombieProducer.abortTransaction();
            }
        }
        zombieProducer.close(Duration.ofSeconds(5));
        zombie.close(Duration.ZERO);
        say("DONE");
    }
}
