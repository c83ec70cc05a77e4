//! A synthetic, labelled set of messages for measuring and testing the spam verdict. It is
//! generated, not collected: no real person's mail is in it. The same seed always gives the
//! same messages.
//!
//! Ham is what a help address receives: requests for help in English, French, Arabic, Farsi,
//! Tigrinya and Spanish, follow-ups quoting an earlier answer, and photos of documents sent
//! from a phone. Spam is pharma, phishing, newsletters, crypto schemes and advance-fee (419)
//! letters. Both share words on purpose (money, bank, urgent, help, family), so the set is not
//! trivially separable.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::bayes::Label;

/// One generated message.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub raw: Vec<u8>,
    pub label: Label,
    /// What kind of message it is (`request-en`, `pharma`, …).
    pub kind: &'static str,
}

const FIRST: &[&str] = &[
    "Amina", "Yonas", "Fatima", "Dawit", "Reza", "Mariam", "Samuel", "Leila", "Omar", "Helen",
    "Tesfay", "Nasrin", "Ahmad", "Sara", "Jean", "Aster", "Karim", "Zainab", "Luis", "Nour",
];
const LAST: &[&str] = &[
    "Haile", "Rahimi", "Mohammed", "Tesfaye", "Karimi", "Diallo", "Bekele", "Hosseini", "Yusuf",
    "Gebre", "Martin", "Ahmadi", "Okoro", "Alvarez", "Kebede", "Said",
];
const MAIL_HOSTS: &[&str] = &[
    "gmail.example",
    "yahoo.example",
    "outlook.example",
    "proton.example",
    "mail.example",
];
const CITIES: &[&str] = &[
    "Manchester",
    "Leeds",
    "Glasgow",
    "Cardiff",
    "Bristol",
    "Birmingham",
    "Croydon",
    "Newport",
];

const REQUESTS_EN: &[&str] = &[
    "Hello, my asylum interview is next {day} and I do not have a lawyer. Can someone help me prepare? I am very worried.",
    "Dear advocacy team, the Home Office sent me a letter saying my support will stop in {n} days. I live in {city} with my two children. What can I do?",
    "Hi, my landlord says I must leave the flat by Friday. I have nowhere to go. Please help me, I have the letter.",
    "Good morning, I need help with my visa renewal. The form asks for bank statements but my account was closed. What should I send?",
    "Hello, I was refused at the GP surgery because I have no address. My son is sick. Who can I call?",
    "Please help, my money from the bank card did not arrive this week and we have no food. My reference number is {ref}.",
    "I am writing for my brother who does not speak English. He got a letter about a hearing on {date} in {city}. Can you explain it?",
];
const REQUESTS_FR: &[&str] = &[
    "Bonjour, j'ai reçu une lettre du Home Office et je ne comprends pas. Mon rendez-vous est le {date}. Pouvez-vous m'aider s'il vous plaît ?",
    "Bonsoir, mon propriétaire veut que je quitte le logement. J'habite à {city} avec ma famille. Que dois-je faire ?",
    "Madame, Monsieur, je demande de l'aide pour ma demande d'asile. Je n'ai pas d'avocat et l'entretien est dans {n} jours.",
];
const REQUESTS_AR: &[&str] = &[
    "مرحبا، وصلتني رسالة من وزارة الداخلية ولا أفهمها. موعد المقابلة يوم {date}. أرجو المساعدة.",
    "السلام عليكم، صاحب البيت يريد أن أترك الشقة هذا الأسبوع. أعيش في {city} مع أطفالي. ماذا أفعل؟",
    "أحتاج مساعدة في طلب اللجوء. ليس لدي محامٍ والمقابلة بعد {n} أيام.",
];
const REQUESTS_FA: &[&str] = &[
    "سلام، من یک نامه از اداره مهاجرت گرفتم و متوجه نمی‌شوم. مصاحبه من روز {date} است. لطفا کمک کنید.",
    "سلام، صاحبخانه می‌گوید باید خانه را ترک کنم. در {city} با خانواده‌ام زندگی می‌کنم. چه کار کنم؟",
];
const REQUESTS_TI: &[&str] = &[
    "ሰላም፣ ካብ ሆም ኦፊስ ደብዳበ ተቐቢለ ግን ኣይተረድኣንን። ቆጸራይ ብ {date} እዩ። በጃኹም ሓግዙኒ።",
    "ሰላም፣ ናይ ዑቕባ ሕቶይ ሓገዝ የድልየኒ። ጠበቓ የብለይን።",
];
const REQUESTS_ES: &[&str] = &[
    "Hola, recibí una carta sobre mi solicitud de asilo y no la entiendo. La cita es el {date}. ¿Me pueden ayudar?",
    "Buenos días, mi casero quiere que deje el piso. Vivo en {city} con mis hijos. ¿Qué puedo hacer?",
];
const FOLLOW_UPS: &[&str] = &[
    "Thank you for your answer. I called them as you said and they told me to send the form again. I attach it now.",
    "Thank you so much. The interview went well. They said the decision comes in {n} weeks. Can I call you if there is a problem?",
    "Merci beaucoup pour votre aide. J'ai envoyé les documents hier.",
    "شكرا جزيلا. أرسلت الأوراق كما قلتم.",
    "Sorry to write again, I still have not received the letter. Should I wait or call the bank?",
];
const PHOTO_NOTES: &[&str] = &[
    "Here is the photo of the letter.",
    "I send the pictures of my documents, sorry they are not very clear.",
    "Voici la photo de la lettre.",
    "صورة الرسالة مرفقة.",
    "Sent from my phone",
];

const PHARMA: &[&str] = &[
    "Buy cheap {drug} online without prescription! Up to {n}0% off, discreet worldwide shipping. Order now at {url}",
    "Best prices on {drug} and {drug2}. Licensed pharmacy, no doctor needed. Visit {url} today.",
    "Men's health breakthrough: {drug} generic only $0.{n}9 per pill. Satisfaction guaranteed. {url}",
];
const PHISHING: &[&str] = &[
    "Dear customer, your account has been suspended due to unusual activity. Verify your identity within 24 hours at {url} or your account will be closed.",
    "Your mailbox is almost full. Click here {url} to upgrade your storage and avoid losing messages.",
    "We could not deliver your parcel. Pay the customs fee of £1.{n}9 at {url} to arrange redelivery.",
    "Security alert: a new sign-in to your bank account from an unknown device. If this was not you, confirm your details at {url}",
];
const NEWSLETTERS: &[&str] = &[
    "This week's top deals: save {n}0% on garden furniture, kitchenware and more. Shop the sale at {url}. Unsubscribe any time.",
    "Your weekly digest: 10 tips for a better morning routine, our new podcast episode, and an exclusive discount code. Read more at {url}",
    "Don't miss our webinar on growing your small business online. Register free at {url}. You are receiving this because you subscribed.",
];
const CRYPTO: &[&str] = &[
    "Earn {n}000 USD per day with our automated bitcoin trading robot. Join thousands of investors at {url} — limited places!",
    "The next 100x coin is here. Get in early on the {coin} presale, guaranteed returns. Wallet connect at {url}",
    "Your crypto wallet has an unclaimed reward of 0.{n} BTC. Claim before it expires: {url}",
];
const FOUR19: &[&str] = &[
    "Dear friend, I am barrister {name}, the personal attorney to a late client who died with his family in a car accident. He left a fund of US$ {n}.5 million with no next of kin. I seek your help to transfer this money to your bank account; you will receive 40%. Reply urgently with your full name and phone number.",
    "Greetings, I am the widow of a former minister. My family needs a trustworthy partner to help us move {n} million dollars out of the country. Please treat this as strictly confidential and reply to my private email.",
    "Congratulations! Your email address won £{n},000,000 in the international lottery. To claim your prize, send your name, address and bank details to the claims agent.",
];
const DRUGS: &[&str] = &[
    "viagra",
    "cialis",
    "tramadol",
    "xanax",
    "levitra",
    "phentermine",
];
const COINS: &[&str] = &["MOONX", "SAFEGEM", "QUANTA", "PEPEAI"];
const SPAM_DOMAINS: &[&str] = &[
    "cheap-meds.example",
    "rx-pharm24.example",
    "secure-verify.example",
    "account-alerts.example",
    "shop-deals.example",
    "news.retailer.example",
    "btc-profit.example",
    "coin-presale.example",
    "parcel-redelivery.example",
    "lotto-claims.example",
];

/// `count` messages from `seed`, about 55% ham and 45% spam, in a shuffled order.
pub fn generate(seed: u64, count: usize) -> Vec<Labelled> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|index| message(&mut rng, index)).collect()
}

fn pick<'a>(rng: &mut StdRng, items: &'a [&'a str]) -> &'a str {
    items
        .get(rng.random_range(0..items.len()))
        .copied()
        .unwrap_or_default()
}

fn fill(rng: &mut StdRng, template: &str) -> String {
    let url = format!(
        "http{}://{}/{}",
        if rng.random_bool(0.7) { "s" } else { "" },
        pick(rng, SPAM_DOMAINS),
        rng.random_range(1000..99999)
    );
    template
        .replace(
            "{day}",
            pick(rng, &["Monday", "Tuesday", "Thursday", "Friday"]),
        )
        .replace("{n}", &rng.random_range(2..9).to_string())
        .replace("{city}", pick(rng, CITIES))
        .replace("{ref}", &format!("ARC{}", rng.random_range(100000..999999)))
        .replace(
            "{date}",
            &format!(
                "{}/{}/2026",
                rng.random_range(1..28),
                rng.random_range(1..12)
            ),
        )
        .replace("{drug}", pick(rng, DRUGS))
        .replace("{drug2}", pick(rng, DRUGS))
        .replace("{coin}", pick(rng, COINS))
        .replace(
            "{name}",
            &format!("{} {}", pick(rng, FIRST), pick(rng, LAST)),
        )
        .replace("{url}", &url)
}

fn fill_from(rng: &mut StdRng, templates: &[&str]) -> String {
    let template = pick(rng, templates);
    fill(rng, template)
}

/// Sentences any message may carry, from either side.
const FILLER: &[&str] = &[
    "Thank you.",
    "Please reply soon.",
    "Best regards",
    "This is urgent.",
    "Call me on 07700 900123.",
    "Kind regards and thank you for your help.",
    "Sent from my iPhone",
    "God bless you.",
    "Do not share this with anyone.",
    "I am waiting for your answer.",
];

/// Drops about one word in eight and adds a filler sentence or two, so that no two messages
/// from one template are alike and the two classes share words.
fn blur(rng: &mut StdRng, body: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in body.lines() {
        if line.starts_with('>') || line.starts_with("On ") || line.starts_with("---") {
            out.push(line.to_owned());
            continue;
        }
        let words: Vec<&str> = line.split(' ').filter(|_| !rng.random_bool(0.12)).collect();
        out.push(words.join(" "));
    }
    for _ in 0..rng.random_range(0..3) {
        out.push(pick(rng, FILLER).to_owned());
    }
    out.join("\n")
}

fn person(rng: &mut StdRng) -> (String, String) {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let address = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        rng.random_range(1..99),
        pick(rng, MAIL_HOSTS)
    );
    (format!("{first} {last}"), address)
}

fn message(rng: &mut StdRng, index: usize) -> Labelled {
    let roll = rng.random_range(0..100);
    let (label, kind) = match roll {
        0..=17 => (Label::Ham, "request-en"),
        18..=25 => (Label::Ham, "request-fr"),
        26..=32 => (Label::Ham, "request-ar"),
        33..=37 => (Label::Ham, "request-fa"),
        38..=41 => (Label::Ham, "request-ti"),
        42..=45 => (Label::Ham, "request-es"),
        46..=49 => (Label::Ham, "follow-up"),
        50..=52 => (Label::Ham, "photo"),
        53..=54 => (Label::Ham, "forwarded-scam"),
        55..=63 => (Label::Spam, "pharma"),
        64..=73 => (Label::Spam, "phishing"),
        74..=82 => (Label::Spam, "newsletter"),
        83..=91 => (Label::Spam, "crypto"),
        _ => (Label::Spam, "419"),
    };
    let (name, address) = person(rng);
    let (from_name, from, subject, body) = match kind {
        "request-en" => (
            name,
            address,
            pick(
                rng,
                &[
                    "Need help",
                    "Help please",
                    "Urgent - letter from Home Office",
                    "question about my case",
                    "Housing problem",
                    "",
                ],
            )
            .to_owned(),
            fill_from(rng, REQUESTS_EN),
        ),
        "request-fr" => (
            name,
            address,
            pick(rng, &["Besoin d'aide", "Demande d'aide", "Urgent"]).to_owned(),
            fill_from(rng, REQUESTS_FR),
        ),
        "request-ar" => (
            name,
            address,
            pick(rng, &["مساعدة", "طلب مساعدة", "عاجل"]).to_owned(),
            fill_from(rng, REQUESTS_AR),
        ),
        "request-fa" => (
            name,
            address,
            pick(rng, &["کمک", "درخواست کمک"]).to_owned(),
            fill_from(rng, REQUESTS_FA),
        ),
        "request-ti" => (
            name,
            address,
            pick(rng, &["ሓገዝ", "ሕቶ"]).to_owned(),
            fill_from(rng, REQUESTS_TI),
        ),
        "request-es" => (
            name,
            address,
            pick(rng, &["Ayuda", "Necesito ayuda"]).to_owned(),
            fill_from(rng, REQUESTS_ES),
        ),
        "follow-up" => {
            let quoted = fill_from(rng, REQUESTS_EN);
            let body = format!(
                "{}\n\nOn Mon, 3 Nov 2026 at 10:12, Helpdesk <help@charity.example> wrote:\n> Thank you for writing to us. A caseworker will answer soon.\n>\n> {}\n",
                fill_from(rng, FOLLOW_UPS),
                quoted.replace('\n', "\n> ")
            );
            (
                name,
                address,
                format!(
                    "Re: [#{}] {}",
                    rng.random_range(10..900),
                    pick(rng, &["Need help", "Help please", "Housing problem"])
                ),
                body,
            )
        }
        "forwarded-scam" => {
            // A requester asking whether a message they received is real: ham full of spam.
            let scam = if rng.random_bool(0.5) {
                fill_from(rng, PHISHING)
            } else {
                fill_from(rng, FOUR19)
            };
            let body = format!(
                "{}\n\n---------- Forwarded message ---------\n{}\n",
                pick(
                    rng,
                    &[
                        "I got this, is it real? They want my bank details. Please help.",
                        "Is this from the Home Office? I am scared to click.",
                        "My son received this, should we answer?",
                        "J'ai reçu ce message, est-ce vrai ?",
                    ]
                ),
                scam
            );
            let subject = pick(
                rng,
                &[
                    "Fwd: is this real?",
                    "Fwd: Action required",
                    "scam?",
                    "Fwd:",
                ],
            );
            (name, address, subject.to_owned(), body)
        }
        "photo" => (
            name,
            address,
            pick(
                rng,
                &["", "photo", "documents", "IMG_2041.jpg", "Fwd: letter"],
            )
            .to_owned(),
            pick(rng, PHOTO_NOTES).to_owned(),
        ),
        "pharma" => (
            pick(rng, &["Online Pharmacy", "RX Store", "Health Deals"]).to_owned(),
            format!("noreply@{}", pick(rng, SPAM_DOMAINS)),
            fill_from(
                rng,
                &[
                    "Cheap {drug} - {n}0% off",
                    "Your order of {drug}",
                    "Best {drug} prices",
                    "Re: your prescription",
                ],
            ),
            fill_from(rng, PHARMA),
        ),
        "phishing" => (
            pick(
                rng,
                &[
                    "Account Security",
                    "IT Helpdesk",
                    "Royal Parcel Service",
                    "Online Banking",
                ],
            )
            .to_owned(),
            format!("security@{}", pick(rng, SPAM_DOMAINS)),
            pick(
                rng,
                &[
                    "Action required: verify your account",
                    "Your mailbox is full",
                    "Parcel delivery failed",
                    "Unusual sign-in activity",
                ],
            )
            .to_owned(),
            fill_from(rng, PHISHING),
        ),
        "newsletter" => (
            pick(
                rng,
                &["Deals Weekly", "The Morning Digest", "Small Business Hub"],
            )
            .to_owned(),
            format!("news@{}", pick(rng, SPAM_DOMAINS)),
            pick(
                rng,
                &[
                    "This week's top deals",
                    "Your weekly digest",
                    "Free webinar invitation",
                    "Last chance: sale ends tonight",
                ],
            )
            .to_owned(),
            fill_from(rng, NEWSLETTERS),
        ),
        "crypto" => (
            pick(rng, &["Crypto Profits", "Bitcoin Robot", "Presale Team"]).to_owned(),
            format!("invest@{}", pick(rng, SPAM_DOMAINS)),
            fill_from(
                rng,
                &[
                    "Earn {n}000 USD a day",
                    "{coin} presale is live",
                    "Unclaimed BTC reward",
                ],
            ),
            fill_from(rng, CRYPTO),
        ),
        _ => (
            name,
            address,
            pick(
                rng,
                &[
                    "URGENT BUSINESS PROPOSAL",
                    "Confidential",
                    "Dear friend",
                    "Your winning notification",
                    "Help my family",
                ],
            )
            .to_owned(),
            fill_from(rng, FOUR19),
        ),
    };
    let body = blur(rng, &body);
    let mut raw = format!(
        "From: {from_name} <{from}>\r\nTo: help@charity.example\r\nSubject: {subject}\r\nDate: Mon, 3 Nov 2026 {:02}:{:02}:00 +0000\r\nMessage-ID: <corpus-{index}-{}@generated.example>\r\nMIME-Version: 1.0\r\n",
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..u32::MAX)
    );
    if kind == "photo" {
        let boundary = format!("b{}", rng.random_range(0..u64::MAX));
        let pixels: String = (0..(48 + rng.random_range(0..48)))
            .map(|i| if i % 76 == 75 { '\n' } else { 'A' })
            .collect();
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n--{boundary}\r\nContent-Type: image/jpeg; name=\"IMG_{}.jpg\"\r\nContent-Disposition: attachment; filename=\"IMG_{}.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/{pixels}\r\n--{boundary}--\r\n",
            rng.random_range(1000..9999),
            rng.random_range(1000..9999),
        ));
    } else if kind == "newsletter" && rng.random_bool(0.5) {
        raw.push_str(&format!(
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<html><body><p>{}</p><p><a href=\"https://{}/unsubscribe\">Unsubscribe</a></p></body></html>\r\n",
            body,
            pick(rng, SPAM_DOMAINS)
        ));
    } else {
        raw.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        ));
    }
    Labelled {
        raw: raw.into_bytes(),
        label,
        kind,
    }
}
