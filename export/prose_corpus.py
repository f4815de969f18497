"""Original passages and questions written for this project: general English prose.

Each pair is a question a user might type and the one passage that answers it, written fresh
for this repository (encyclopedic paragraphs, news reports, letters and emails, workplace
memos, product reviews, travel, cooking, health advice and short fiction), with several small
clusters of same-topic passages so that near neighbours act as distractors. The set is one
domain of the int8 retrieval gate; it is never used for calibration or training.
"""

PROSE: tuple[tuple[str, str], ...] = (
    (
        "When was the Harlow suspension bridge first opened to cars?",
        "The Harlow Span is a suspension bridge carrying a two-lane road across the estuary of the River "
        "Aske near the fishing town of Carrow. Designed by the engineer Matilda Greaves, it was opened to "
        "traffic in 1931 after four years of construction, and at the time its central span of 412 metres "
        "was the longest in the country. The deck hangs from two steel cables, each made of more than nine "
        "thousand individual wires.",
    ),
    (
        "How many arches does the Kessingford railway viaduct stand on?",
        "The Kessingford Viaduct carries the main railway line over the valley of the Lunn at a height of "
        "thirty-eight metres. Built between 1864 and 1868 from locally quarried gritstone, it rests on "
        "twenty-seven semicircular arches, and more than two hundred labourers lived in a temporary camp at "
        "its foot during construction. Trains still cross it today, although a speed limit of fifty miles an "
        "hour was imposed in 1995 after engineers found cracking in two of the piers.",
    ),
    (
        "Why was a roof put over the old wooden bridge at Marrow Creek?",
        "The Marrow Creek Covered Bridge is one of the last timber bridges of its kind still standing in the "
        "county. Its builders added the pitched roof and plank walls not for travellers' comfort but to keep "
        "rain and snow off the load-bearing trusses, which would otherwise have rotted within a couple of "
        "decades. Thanks to that shelter, most of the original 1872 timbers survive, and the bridge now "
        "carries pedestrians and cyclists only.",
    ),
    (
        "Tellbrook bridge closure repairs",
        "The Tellbrook Swing Bridge will remain closed to road traffic until the end of April while its "
        "turning mechanism is replaced, the harbour authority announced on Monday. The bridge pivots on a "
        "central pier to let tall-masted vessels into the inner basin, but the hydraulic motors installed in "
        "the 1970s failed twice last winter. Pedestrians can use a temporary ferry that runs every fifteen "
        "minutes, and drivers are advised to follow the signed diversion through Upper Quay.",
    ),
    (
        "Which customer wants their money back for a kettle damaged during delivery?",
        "Dear customer service, I ordered a stainless steel electric kettle from your website on 3 March, "
        "and it arrived yesterday with the lid hinge snapped and a dent in the side. The outer box was also "
        "crushed, so I assume it was damaged in transit. I would prefer a full refund rather than a "
        "replacement, as I have since bought one locally. I have kept the packaging and attached photographs "
        "of the damage. Kind regards, Priya Anand.",
    ),
    (
        "Did the shop give back the delivery charge after the sofa turned up late?",
        "Dear Mr Okafor, thank you for your patience regarding your sofa order. We are sorry that the "
        "delivery arrived eleven days after the date we promised, and that you took a day off work for the "
        "original slot. As a goodwill gesture we have refunded the full delivery charge of 49 pounds to your "
        "card, which should appear within five working days. Your sofa itself is not affected, and its "
        "ten-year frame guarantee starts from the day it reached you.",
    ),
    (
        "billed twice for monthly subscription",
        "Hello, I'm writing because my bank statement shows two charges of 12.99 for my monthly streaming "
        "subscription on the same day in June. I only have one account, and when I log in it lists a single "
        "active plan. Could you please check what happened and return the duplicate payment? I'd also like "
        "to know whether this will happen again next month, because I set up the payment only once.",
    ),
    (
        "Can I swap trainers that don't fit for a bigger pair?",
        "Hi Tomasz, sorry to hear the running shoes were too small. You're welcome to exchange them for a "
        "larger size free of charge, provided they haven't been worn outdoors and are returned within thirty "
        "days of delivery. Just print the prepaid label from your order page, pack the shoes in their "
        "original box and drop the parcel at any post office. We'll send the new pair as soon as the "
        "warehouse scans your return, usually within two days.",
    ),
    (
        "How do I get my money back for the called-off Riverside Hall show?",
        "Because the Saturday concert at the Riverside Hall has been cancelled owing to the performer's "
        "illness, all ticket holders are entitled to a refund of the face value plus booking fees. Customers "
        "who bought online do not need to take any action: the money will be returned automatically to the "
        "original payment card within fourteen days. Those who paid cash at the box office should bring "
        "their tickets back to the venue by the end of the month.",
    ),
    (
        "Where on the body does the measles rash usually begin?",
        "Measles is a highly contagious viral infection that spreads through the air when an infected person "
        "coughs or sneezes. It usually begins with a high temperature, a runny nose, a cough and sore, red "
        "eyes, and a few days later a blotchy rash appears, typically starting on the face and behind the "
        "ears before spreading down the body. Complications can include pneumonia and, rarely, inflammation "
        "of the brain, which is why two doses of the MMR vaccine are recommended for all children.",
    ),
    (
        "Which infection makes the glands under the ears puff up?",
        "Mumps is a viral illness best known for causing painful swelling of the salivary glands just below "
        "the ears, which gives the face a puffy, hamster-like appearance. Before the swelling starts, people "
        "often have a headache, joint pain and a mild fever. There is no specific treatment, so care focuses "
        "on rest, plenty of fluids and painkillers, with soft foods that need little chewing. In teenage "
        "boys and men it can sometimes cause swelling of the testicles.",
    ),
    (
        "Why is German measles a risk for pregnant women?",
        "Rubella, sometimes called German measles, is usually a mild illness in children, causing a fine "
        "pink rash, a slight fever and swollen glands at the back of the neck. Many infected people notice "
        "almost no symptoms at all. The real danger is to unborn babies: if a woman catches rubella in the "
        "early weeks of pregnancy, the virus can cause deafness, eye problems and heart defects in the "
        "child. Anyone who is pregnant and has been in contact with the illness should speak to a doctor "
        "promptly.",
    ),
    (
        "When can a child with chickenpox go back to school?",
        "Chickenpox causes itchy red spots that fill with fluid, turn into blisters and then crust over, "
        "often appearing in waves over several days. A child is infectious from about two days before the "
        "spots appear until every spot has formed a scab, so they should stay away from nursery or school "
        "until then. Cooling gels, calamine lotion and loose cotton clothing can ease the itching. The virus "
        "stays dormant in the body afterwards and may return years later as shingles.",
    ),
    (
        "How much fully paid leave can the second parent take at Larkfield?",
        "From 1 January, Larkfield employees who become parents through birth, adoption or surrogacy will "
        "receive up to twenty-six weeks of leave at full pay if they are the primary carer. Partners will be "
        "entitled to six weeks at full pay, which can be taken in up to three separate blocks during the "
        "first year. Staff need at least six months of service to qualify, and requests should be submitted "
        "to the People team at least eight weeks before the leave begins.",
    ),
    (
        "Larkfield work from home days",
        "Following the staff survey, Larkfield's hybrid working pilot will become permanent policy. "
        "Office-based employees may work from home for up to three days a week, subject to their manager's "
        "agreement, but everyone is expected on site on Tuesdays, which will be kept as the company-wide "
        "team day. Core hours of ten until three apply wherever you are working, and home workers must have "
        "a suitable desk and chair, for which a one-off allowance of 250 pounds is available.",
    ),
    (
        "What does Larkfield pay per mile when I drive my own car for work?",
        "A reminder to all Larkfield staff about travel expenses: claims must be submitted through the "
        "finance portal within sixty days of the journey, with an itemised receipt attached for every item "
        "over ten pounds. Business mileage in a personal car is reimbursed at 45 pence per mile, and hotel "
        "stays are capped at 140 pounds per night outside London. Alcohol cannot be claimed under any "
        "circumstances, and late claims will only be paid with a director's approval.",
    ),
    (
        "Can I roll unused holiday over into next year at Larkfield, and until when?",
        "As the end of the holiday year approaches, please check your remaining annual leave in the HR "
        "system. Larkfield allows up to five unused days to be carried into the next year, but any "
        "carried-over days must be taken by 31 March or they will be lost. Days beyond the five-day limit "
        "cannot be carried forward or paid out except when an employee leaves the company. Managers are "
        "asked to make sure team members book their remaining time off before the December peak.",
    ),
    (
        "How should Larkfield staff let their boss know they are ill on the first day?",
        "If you are too ill to work, please phone your line manager, rather than sending an email or text, "
        "before half past nine on the first morning of your absence. For absences of up to seven calendar "
        "days you can self-certify through the HR system when you return. From the eighth day, Larkfield "
        "requires a fit note from a doctor. A short return-to-work conversation with your manager follows "
        "every period of sickness, however brief, so that any support you need can be arranged.",
    ),
    (
        "When did keepers stop living at the Skerrin Point light?",
        "The lighthouse on Skerrin Point was the last on this stretch of coast to have resident keepers. "
        "Three families lived in the cottages at its base until 1987, when the light was automated and "
        "monitored from the mainland instead. The final principal keeper, Angus Farrow, had served there for "
        "twenty-two years and kept a daily weather log that is now held in the county archive. The cottages "
        "have since been converted into holiday lets.",
    ),
    (
        "What is the flash pattern of the Gullhaven lighthouse?",
        "Painted in broad red and white horizontal bands, the Gullhaven lighthouse is one of the most "
        "photographed landmarks in the region. Its lantern shows a single white flash every ten seconds, a "
        "pattern that allows sailors to tell it apart from neighbouring lights, and in clear weather the "
        "beam can be seen from about twenty nautical miles away. The tower stands on a granite ledge and is "
        "reached by a causeway that floods at high tide.",
    ),
    (
        "How did engineers manage to build a lighthouse on a reef far out at sea?",
        "Building the lighthouse on Brannock Rock, a reef fourteen kilometres out to sea, took seven years "
        "because work was possible only during calm summer weather at low tide. The engineers cut each "
        "granite block on shore so that it dovetailed with its neighbours, then shipped them out in order "
        "and locked them together without relying on mortar alone. The completed tower, first lit in 1849, "
        "has withstood storms that swept waves over its lantern gallery.",
    ),
    (
        "Dunmore Head lighthouse opening hours",
        "The Dunmore Head lighthouse and its keepers' house are open to visitors from Easter until the end "
        "of October, every day except Mondays. Guided climbs of the tower's 117 steps run every hour from "
        "ten o'clock, and children under eight are not permitted on the climb for safety reasons. Tickets "
        "cost seven pounds for adults and four for children, and the old oil store now houses a café serving "
        "soup and homemade cakes.",
    ),
    (
        "How often do I need to feed my sourdough culture?",
        "A sourdough starter is simply flour and water colonised by wild yeasts and lactic acid bacteria. To "
        "keep one healthy, discard about half of it each day and feed the rest with equal weights of fresh "
        "flour and water, leaving it at room temperature. If you bake only once a week, the starter can live "
        "in the fridge and be fed weekly instead. A layer of grey liquid on top is harmless: it simply means "
        "the culture is hungry.",
    ),
    (
        "Do you have to knead the dough when making focaccia?",
        "Focaccia is one of the most forgiving breads for a beginner. The very wet dough needs no kneading; "
        "instead it is folded a few times in the bowl and left to rise slowly, ideally overnight in the "
        "fridge. Before baking, pour plenty of olive oil into the tin, press deep dimples into the dough "
        "with your fingertips and scatter over flaky salt and rosemary. A hot oven gives a crisp, golden "
        "base and an airy crumb.",
    ),
    (
        "What makes soda bread rise if there is no yeast in it?",
        "Irish soda bread rises without any yeast at all. Instead, bicarbonate of soda reacts with the acid "
        "in buttermilk to release carbon dioxide, so the loaf must go into the oven as soon as the dough "
        "comes together, before the bubbles escape. Handle it lightly and briefly, shape a round, and cut a "
        "deep cross in the top so the heat reaches the centre. It is best eaten on the day it is baked, warm "
        "with butter.",
    ),
    (
        "Why should I wait a day before cutting a dark rye loaf?",
        "Dark rye bread behaves very differently from wheat loaves because rye flour contains little gluten, "
        "so the dough is more like a thick paste than something you can knead. It is usually made with a "
        "sour culture, baked in a tin, and produces a dense, moist crumb. Most bakers advise waiting at "
        "least twenty-four hours before cutting into it, wrapped in a cloth, because the crumb continues to "
        "set and will be gummy if sliced too early.",
    ),
    (
        "Is the Broadfell ridge walk OK for someone who is scared of heights?",
        "The Broadfell Ridge route is the classic day walk of the Calder Hills, a fourteen-kilometre circuit "
        "that follows a narrow crest above two glacial lakes. The views are superb, but the middle section "
        "is exposed, with steep drops on both sides and a short scramble over bare rock. It is not "
        "recommended in high winds or for walkers with a fear of heights, and most people allow six to seven "
        "hours to complete the loop.",
    ),
    (
        "easy buggy-friendly walk Calder Hills",
        "For families with small children, the Mirewater Lakeside Path is the gentlest walk in the Calder "
        "Hills. The five-kilometre loop is almost completely flat, with a firm gravel surface suitable for "
        "pushchairs and wheelchairs, and benches are placed every few hundred metres. Halfway round there is "
        "a small beach where children can paddle in summer, and the boathouse café near the car park sells "
        "ice creams and hot drinks.",
    ),
    (
        "Do I need to reserve ahead to sleep in the Calder Hills mountain huts?",
        "Walkers planning a multi-day trek through the Calder Hills can stay in one of four mountain huts "
        "run by the hill-walking association. Bunks must be booked online in advance between May and "
        "September, and each costs twenty-two pounds a night. The huts provide mattresses, blankets, a gas "
        "stove and cooking pots, but there is no electricity and visitors must bring their own sleeping bag "
        "liner and food. Dogs are not permitted inside.",
    ),
    (
        "How can I get to the Calder Hills trailheads without driving?",
        "On summer weekends the car parks at the main trailheads in the Calder Hills are usually full by "
        "nine in the morning. The national park authority encourages visitors to use the Hillrider shuttle "
        "bus instead, which runs every thirty minutes from Ardley railway station and stops at Mirewater, "
        "Broadfell and the Stonegate visitor centre. A day ticket costs six pounds, and walkers can get on "
        "and off as often as they like.",
    ),
    (
        "How long does the Airlite cordless vacuum run on one charge?",
        "The Brisa Airlite cordless vacuum weighs just under two kilograms, which makes it easy to carry up "
        "stairs and to use on curtains and ceilings. Suction is strong on hard floors, although it struggles "
        "a little with deep-pile rugs. My main complaint is the battery: I got about twenty-five minutes on "
        "the standard setting, and barely eight on boost. The dust bin is also small and needed emptying "
        "twice while cleaning a three-bedroom house.",
    ),
    (
        "Does the Halden robot vacuum get trapped under furniture?",
        "After a month with the Halden R5 robot vacuum, I'm mostly impressed. It mapped our flat on the "
        "first run, and the app lets me mark rooms and no-go zones, so it no longer wanders into the cat's "
        "food bowls. Pick-up on carpets is decent. However, it regularly wedges itself under our low sofa "
        "and has to be rescued, and the self-emptying base is noisier than I expected, like a brief "
        "hairdryer blast.",
    ),
    (
        "vacuum for dog hair tangles",
        "If you share your home with a long-haired dog, the Tamworth PetPro upright is worth a look. Its "
        "brush roll has a comb that cuts wrapped hair as it spins, so I haven't had to snip tangles off with "
        "scissors once. Being corded, it never runs out of power, and the ten-metre cable covers most rooms "
        "from one socket. The trade-off is weight: at over seven kilograms, it's hard work to haul up to the "
        "first floor.",
    ),
    (
        "Is there a cheap handheld vacuum that works well in the car?",
        "The Brisa Pocket handheld is meant for quick jobs, and judged on that basis it does well. It "
        "cleared crumbs and sand from my car seats in a few minutes and charges by USB-C, so I can top it up "
        "from the car's socket. Don't expect it to pull dog hair out of carpet or dust from deep in the "
        "seams, though: suction is modest. At thirty-five pounds it is good value as a spare vacuum.",
    ),
    (
        "Is Brindlecombe library going to start opening on Sundays?",
        "Brindlecombe's central library will open on Sunday afternoons from next month, after the town "
        "council approved an extra 38,000 pounds in its annual budget. The library, which currently closes "
        "at five on weekdays and all day on Sundays, will also stay open until eight on Thursday evenings. "
        "Councillor Ruth Mbeki said the change responded to demand from students and working parents, who "
        "had found the existing hours difficult to fit around their schedules.",
    ),
    (
        "Brindlecombe parking charges rise",
        "Drivers in Brindlecombe will pay more to park in the town centre from April, after councillors "
        "voted eight to five to raise charges at the three council-run car parks. An hour's stay will rise "
        "from one pound twenty to one pound sixty, while the first thirty minutes remain free to support "
        "short shopping trips. Traders on the High Street criticised the decision, warning that higher fees "
        "would push customers towards the out-of-town retail park.",
    ),
    (
        "What is going to be built on the old gasworks land in Brindlecombe?",
        "A new public park will be created on the site of Brindlecombe's old gasworks, which has stood empty "
        "for almost thirty years. The council said the ground had now been fully cleaned of contamination, "
        "and work on footpaths, a playground and a wildflower meadow would begin in the summer. The "
        "four-hectare park, to be named Gasholder Green, is expected to open in autumn next year and will be "
        "linked to the riverside cycle path.",
    ),
    (
        "Which two Brindlecombe primary schools might be combined into one?",
        "Parents in Brindlecombe have until 30 November to respond to a proposal to merge St Anne's and "
        "Hollybank primary schools, whose pupil numbers have fallen sharply. Under the plan, the combined "
        "school would occupy the larger Hollybank building from September 2026, and St Anne's would close. "
        "Several parents at a packed meeting on Tuesday raised concerns about longer walks to school and the "
        "safety of crossing the ring road.",
    ),
    (
        "Why do some volcanoes have wide, gently sloping sides?",
        "Shield volcanoes are built almost entirely from fluid basaltic lava that flows long distances "
        "before cooling, so they grow into broad domes with gentle slopes, rather like a warrior's shield "
        "lying on the ground. Their eruptions are usually effusive rather than explosive, with lava "
        "fountains and rivers of molten rock. Mauna Loa in Hawaii, one of the largest volcanoes on Earth, is "
        "a classic example.",
    ),
    (
        "What kind of volcano are Mount Fuji and Vesuvius?",
        "Stratovolcanoes, also called composite volcanoes, are the steep, cone-shaped mountains most people "
        "picture when they think of a volcano. They are built up from alternating layers of hardened lava, "
        "ash and rock fragments. Their magma is thick and rich in silica, which traps gas until the pressure "
        "is released in violent eruptions. Mount Fuji in Japan and Vesuvius in Italy both belong to this "
        "type.",
    ),
    (
        "Which volcano suddenly appeared in a farmer's field in Mexico?",
        "Cinder cones are the smallest and simplest type of volcano, formed when gas-charged lava is blasted "
        "into the air and falls back as loose fragments around a single vent. They rarely rise more than a "
        "few hundred metres and often erupt only once. One of the most famous appeared in a Mexican "
        "cornfield in 1943: within a year, Parícutin had grown to more than three hundred metres high.",
    ),
    (
        "Who founded the Marsh School of painters?",
        "Eleanor Vasey is regarded as the founder of the Marsh School, a loose circle of painters who worked "
        "in the eastern fenlands in the 1890s. She was fascinated by mist and low winter light, and her "
        "best-known canvases show drainage channels and windmills dissolving into fog. Vasey exhibited "
        "rarely during her lifetime, and much of her reputation was built after her death, when her nephew "
        "donated forty paintings to the city gallery.",
    ),
    (
        "Which Marsh School artist used bright colours and moved to France?",
        "Tobias Renn joined the Marsh School painters in 1894 but soon broke with their muted palette. His "
        "portraits of eel fishermen and reed cutters use vivid oranges and blues, applied in thick, rapid "
        "strokes that scandalised local critics. In 1899 he moved to Paris, where his work found a more "
        "sympathetic audience, and he never returned to the fens, although he painted them from memory until "
        "the end of his life.",
    ),
    (
        "When were Mary Holcombe's lost sketchbooks discovered?",
        "Unlike her fellow Marsh School artists, Mary Holcombe worked almost exclusively in watercolour and "
        "on a small scale, producing delicate studies of wetland plants, insects and birds' nests. For "
        "decades she was remembered mainly as Eleanor Vasey's companion and assistant. That changed in 1972, "
        "when eleven of her sketchbooks were found in a farmhouse attic, revealing an artist of remarkable "
        "precision and originality.",
    ),
    (
        "How long is the Marsh School exhibition at the city gallery on for?",
        "The city gallery's new exhibition, Light on the Levels, brings together more than a hundred works "
        "by the Marsh School painters, including several loaned from private collections for the first time. "
        "The highlight is a room devoted to winter scenes, where the gallery has lowered the lighting to "
        "mimic a fenland dusk. The show runs until 14 February; entry is free, although visitors are "
        "encouraged to book a timed slot at weekends.",
    ),
    (
        "Why did the Westhaven Marathon change its route this year?",
        "This year's Westhaven Marathon will follow a new route that avoids the steep climb up Castle Hill, "
        "which runners have long described as the cruellest part of the course. Instead, the race will loop "
        "twice around the harbour before finishing on the promenade. Organisers expect the flatter course to "
        "produce faster times, and say the change also means fewer road closures in the old town on race "
        "morning.",
    ),
    (
        "Who broke the course record at the Westhaven half marathon?",
        "Local runner Dana Whitlock won the women's race at Sunday's Westhaven Half Marathon in one hour, "
        "eleven minutes and four seconds, breaking the course record by almost a minute. Whitlock, a "
        "29-year-old physiotherapist, trains mostly before work and had finished fourth last year. The men's "
        "race was decided in a sprint along the promenade, with Marco Ferri edging out the defending "
        "champion by less than a second.",
    ),
    (
        "Westhaven fun run entry fee",
        "Registration is now open for the Westhaven Family 5K, a charity fun run held on the morning of the "
        "marathon. Entry costs ten pounds for adults and is free for under-sixteens, and every finisher "
        "receives a medal. Fancy dress is encouraged, with a prize for the best costume, and all proceeds go "
        "to the town's children's hospice. Children under twelve must run with a registered adult.",
    ),
    (
        "Which bird can stay in the air for years without touching down?",
        "The common swift spends almost its entire life in the air, feeding, drinking and even sleeping on "
        "the wing. A young swift that leaves the nest may not land again for two or three years, until it is "
        "ready to breed. In Europe, swifts arrive in late spring to nest in gaps under roof tiles and in old "
        "buildings, and leave again for Africa by August. Their screaming summer flights over rooftops are a "
        "familiar sound in many towns.",
    ),
    (
        "How does a barn owl locate its prey in total darkness?",
        "The barn owl hunts mainly by sound. Its pale, heart-shaped face works like a satellite dish, "
        "funnelling sound towards ears that sit at slightly different heights on each side of the head, "
        "which lets the bird pinpoint a vole moving under long grass even in complete darkness. Soft, "
        "fringed edges on its flight feathers make it almost silent in the air. Barn owls favour rough "
        "grassland and often nest in old farm buildings.",
    ),
    (
        "Where do kingfishers build their nests?",
        "With its electric-blue back and orange breast, the kingfisher is unmistakable, though often seen "
        "only as a flash of colour low over the water. It watches from a branch above a stream, then plunges "
        "in headfirst to catch small fish, which it beats against the perch before swallowing. Pairs nest at "
        "the end of a tunnel that they dig into a steep riverbank, sometimes more than half a metre long.",
    ),
    (
        "At what time of year do grey herons start breeding?",
        "The grey heron is a patient hunter, standing motionless in shallow water for long periods before "
        "spearing a fish or frog with a sudden thrust of its dagger-like bill. Despite hunting alone, herons "
        "breed together in colonies known as heronries, building large stick nests high in the tops of "
        "trees. They are among the earliest birds to nest, often laying eggs in February, and the same "
        "heronry may be used for decades.",
    ),
    (
        "story where the baker's flour delivery turns up late",
        "Ines unlocked the bakery at half past four, as she had every morning for eleven years, and found "
        "the flour delivery had not come. She stood in the cold doorway, counting sacks in her head. There "
        "was enough for the bread, but not for the Saturday cakes. By the time the van finally rattled into "
        "the square at six, she had already sent her nephew Mateo running to borrow two bags from the café "
        "next door.",
    ),
    (
        "In the story, what did the baker notice about the old coin the stranger gave her?",
        "The stranger bought a single rye loaf and paid with a coin Ines had not seen since she was a girl, "
        "heavy and worn smooth at the edges. When she told him it was no longer accepted, he only smiled and "
        "said she should keep it anyway. She put it in the jar beside the till. That evening, turning it "
        "over in her fingers, she realised the date stamped on it was the year her father had opened the "
        "shop.",
    ),
    (
        "Story about a boy learning from his aunt how to shape bread",
        "Mateo's first loaves came out of the oven flat and pale, like stones from a riverbed. Ines said "
        "nothing; she tore one open, tasted it and nodded as though it were perfectly fine. Then she took "
        "his hands in hers and showed him again how to fold the dough towards himself, turning it a quarter "
        "each time, until its surface was tight and smooth. The second batch rose so high that he laughed "
        "out loud.",
    ),
    (
        "How much of my fare do I get back if my Northway train is 40 minutes late?",
        "Northway Rail passengers can claim compensation whenever their train arrives at least fifteen "
        "minutes late, whatever the cause. Delays of fifteen to twenty-nine minutes earn back a quarter of "
        "the single fare, half an hour to an hour earns half, and anything longer refunds the full price. "
        "Claims must be made within twenty-eight days, online or using the form available at staffed "
        "stations, and season ticket holders are compensated on a pro-rata daily basis.",
    ),
    (
        "Can I take my bike on the replacement buses between Ashby and Kelmer?",
        "No trains will run between Ashby Junction and Kelmer on the weekend of 8 and 9 March while Northway "
        "Rail replaces a section of track and renews overhead wires. Replacement buses will leave from the "
        "station forecourts every twenty minutes, adding about forty-five minutes to the journey. Bicycles "
        "cannot be carried on the buses, except folding models, and passengers travelling with pushchairs "
        "are advised to allow extra time.",
    ),
    (
        "I left my bag on a Northway train, where will it end up?",
        "If you leave something on a Northway Rail train, report it through the lost property page as soon "
        "as possible, giving the date, time and route of your journey and a description of the item. Items "
        "found on trains are sent to the central lost property office at Kelmer station, where they are kept "
        "for three months. There is a handling fee of five pounds when you collect, or you can pay for it to "
        "be posted to you.",
    ),
    (
        "Why is Venus hotter than Mercury even though it is further from the Sun?",
        "Venus is the hottest planet in the solar system, even though Mercury is closer to the Sun. Its "
        "thick atmosphere of carbon dioxide traps heat so effectively that surface temperatures reach around "
        "465 degrees Celsius, hot enough to melt lead. Venus also spins very slowly and in the opposite "
        "direction to most planets, so a single day there lasts longer than its year.",
    ),
    (
        "What gives the red planet its colour?",
        "Mars owes its rusty colour to iron oxide in the dust that covers much of its surface. Although it "
        "is only about half the width of Earth, it hosts Olympus Mons, the largest known volcano in the "
        "solar system, which rises roughly two and a half times higher than Mount Everest. Mars has two "
        "small, irregular moons, Phobos and Deimos, which may be asteroids captured by its gravity long ago.",
    ),
    (
        "biggest planet giant storm",
        "Jupiter is the largest planet in the solar system, with more than twice the mass of all the other "
        "planets combined. It is a gas giant made mostly of hydrogen and helium, with no solid surface to "
        "stand on. Its most famous feature, the Great Red Spot, is a storm wider than Earth that has been "
        "raging for at least a couple of centuries. Jupiter also has dozens of moons, including Ganymede, "
        "which is larger than the planet Mercury.",
    ),
    (
        "What are the rings around Saturn made of?",
        "Saturn's rings, though they look solid from a distance, are made of countless pieces of ice and "
        "rock ranging from tiny grains to chunks as large as houses. The planet itself is so light for its "
        "size that its average density is lower than that of water. Its largest moon, Titan, is the only "
        "moon in the solar system with a thick atmosphere, and it has lakes of liquid methane and ethane on "
        "its surface.",
    ),
    (
        "Who built the first European press that printed with reusable metal letters?",
        "Around 1450, the goldsmith Johannes Gutenberg developed a printing system in the German city of "
        "Mainz that combined movable metal type, an oil-based ink and a press adapted from those used to "
        "make wine. Because each letter could be cast in quantity and reused, pages could be composed and "
        "printed far faster than any scribe could copy them. His Bible, completed in the mid-1450s, was "
        "among the first major books printed this way in Europe.",
    ),
    (
        "1666 London fire origin",
        "The Great Fire of London broke out in the early hours of 2 September 1666 at a bakery on Pudding "
        "Lane. Fanned by a strong east wind and fed by closely packed timber houses, it burned for four days "
        "and destroyed around thirteen thousand homes, dozens of churches and the old St Paul's Cathedral. "
        "Only a handful of deaths were officially recorded, although historians believe the true number was "
        "higher.",
    ),
    (
        "What else apart from silk was traded on the old caravan routes from China to the Mediterranean?",
        "The Silk Road was not a single road but a shifting web of caravan routes linking China with Central "
        "Asia, Persia and the Mediterranean. Silk was only one of the goods carried along it; spices, glass, "
        "horses, paper and precious metals travelled too, usually changing hands many times between "
        "merchants rather than making the whole journey. Ideas moved as well, and Buddhism spread from India "
        "into China partly through these trading networks.",
    ),
    (
        "How long was the Roman wall built across the north of England?",
        "Hadrian's Wall was begun in AD 122 on the orders of the Roman emperor Hadrian and ran for about 117 "
        "kilometres across northern Britain, from the River Tyne in the east to the Solway Firth in the "
        "west. Small forts called milecastles were placed roughly every Roman mile along it, with larger "
        "forts housing garrisons of several hundred soldiers. Long stretches survive today and can be "
        "followed on a national trail.",
    ),
    (
        "Which ancient object helped scholars decode Egyptian hieroglyphs?",
        "The Rosetta Stone was found in 1799 by French soldiers rebuilding a fort near the town of Rashid in "
        "the Nile Delta. It carries a decree issued in 196 BC written three times: in hieroglyphs, in the "
        "everyday Demotic script and in ancient Greek. Because scholars could read the Greek, the stone gave "
        "them a key to the other two, and in 1822 Jean-François Champollion announced that he had deciphered "
        "the hieroglyphs.",
    ),
    (
        "medieval Baltic merchant alliance",
        "The Hanseatic League was a commercial and defensive alliance of merchant guilds and market towns "
        "that dominated trade around the Baltic and North Sea from the thirteenth to the fifteenth century. "
        "Cities such as Lübeck, Hamburg and Bergen belonged to it, and the league kept trading posts, known "
        "as kontors, in places as far apart as London and Novgorod. Its power faded as strong territorial "
        "states and new Atlantic trade routes emerged.",
    ),
    (
        "How did the Romans bring water into their cities without pumps?",
        "Roman aqueducts carried water into cities using nothing but gravity. Engineers surveyed routes with "
        "a very slight, steady downhill gradient, sometimes only a few centimetres per hundred metres, so "
        "that water flowed continuously over many kilometres. Most of an aqueduct actually ran underground "
        "in channels; the famous arched bridges were built only where the line had to cross a valley. At its "
        "height, ancient Rome was supplied by eleven aqueducts.",
    ),
    (
        "When did Iceland's medieval parliament first meet?",
        "Iceland was settled mainly by Norse people from Norway, along with Gaelic people from Britain and "
        "Ireland, from around 874 onwards. In 930 the settlers established the Althing, an open-air assembly "
        "held each summer at Thingvellir, where laws were recited and disputes settled. It is often "
        "described as one of the oldest parliaments in the world, and the site is now a national park.",
    ),
    (
        "Were the Egyptian pyramids built by slaves?",
        "The Great Pyramid of Giza was built for the pharaoh Khufu around 4,500 years ago and contains an "
        "estimated 2.3 million stone blocks. Archaeologists who excavated the nearby workers' village found "
        "bakeries, breweries and cemeteries, evidence that the builders were organised, fed and buried with "
        "care rather than being slaves, as was long assumed. How the heaviest blocks were raised is still "
        "debated, though ramps of mud brick and rubble were almost certainly used.",
    ),
    (
        "What safety rules at sea changed after the Titanic sank?",
        "The RMS Titanic sank in the North Atlantic in the early hours of 15 April 1912, less than three "
        "hours after striking an iceberg on its maiden voyage from Southampton to New York. More than 1,500 "
        "people died, partly because the ship carried lifeboats for only about half of those on board. The "
        "disaster led to the first International Convention for the Safety of Life at Sea, which required "
        "enough lifeboat places for everyone.",
    ),
    (
        "world's deepest freshwater lake",
        "Lake Baikal in southern Siberia is the deepest lake on Earth, plunging to more than 1,600 metres, "
        "and at roughly 25 million years old it is also thought to be the oldest. It holds around a fifth of "
        "the world's unfrozen fresh surface water. Many of its species are found nowhere else, including the "
        "nerpa, one of the few seals that live only in fresh water.",
    ),
    (
        "Why are so many big telescopes built in the Chilean desert?",
        "The Atacama Desert, stretching along the Pacific coast of northern Chile, is the driest non-polar "
        "desert in the world; some weather stations there have never recorded rainfall. The dryness comes "
        "from a combination of a cold ocean current, which cools the air, and the Andes, which block "
        "moisture from the east. The same clear, dry skies make the region one of the best places on Earth "
        "for astronomy, and several major observatories are built there.",
    ),
    (
        "How do people in Iceland heat their homes?",
        "Almost nine in ten homes in Iceland are heated directly by geothermal water, piped from boreholes "
        "that tap reservoirs heated by the volcanic rock beneath the island. In the capital, Reykjavik, hot "
        "water travels through insulated pipelines from fields outside the city and is cheap enough that "
        "some pavements and car parks have heating pipes beneath them to keep them free of ice in winter.",
    ),
    (
        "Why has nobody built a bridge across the Amazon?",
        "The Amazon carries more water than any other river on Earth, discharging around a fifth of all the "
        "fresh water that flows into the oceans. Its mouth is so wide and its flow so strong that fresh "
        "water can be found far out into the Atlantic. Remarkably, no bridge crosses the main river anywhere "
        "along its length, largely because it runs through sparsely populated rainforest where the banks "
        "shift and flood each year.",
    ),
    (
        "How were the steep-sided coastal inlets of Norway carved out?",
        "Fjords are long, narrow sea inlets with steep sides, formed when glaciers carved deep U-shaped "
        "valleys during the ice ages and the sea flooded in after the ice melted. They are often much deeper "
        "in the middle than at the mouth, where a shallow sill of rock and debris marks the glacier's "
        "furthest reach. Norway's coastline is famous for them, but they are also found in Chile, New "
        "Zealand, Greenland and Canada.",
    ),
    (
        "Why do swimmers float so easily in the Dead Sea?",
        "The shores of the Dead Sea, bordered by Jordan to the east and by Israel and the West Bank to the "
        "west, are the lowest land on Earth, lying more than 400 metres below sea level. Its water is around "
        "ten times saltier than the ocean, so dense that swimmers float effortlessly on the surface. The "
        "lake is shrinking by about a metre a year, mainly because water from the River Jordan that once fed "
        "it is now diverted for farming and drinking.",
    ),
    (
        "plant food from sunlight process",
        "Photosynthesis is the process by which plants, algae and some bacteria use sunlight to turn carbon "
        "dioxide and water into sugar, releasing oxygen as a by-product. It takes place mainly in the "
        "leaves, inside tiny structures called chloroplasts that contain the green pigment chlorophyll. The "
        "sugars provide energy for growth and are also used to build cellulose, the tough material that "
        "makes up plant cell walls.",
    ),
    (
        "How does a vaccine protect you against an infection?",
        "Vaccines train the immune system to recognise a germ without the person having to suffer the "
        "disease itself. They contain a weakened or inactivated form of the microbe, a piece of it such as a "
        "protein, or instructions that let the body's own cells make that piece. The immune system responds "
        "by producing antibodies and memory cells, so that if the real germ appears later, it can be fought "
        "off quickly.",
    ),
    (
        "Why are there two high tides every day?",
        "Tides are caused mainly by the gravitational pull of the Moon, with a smaller contribution from the "
        "Sun. The Moon pulls the ocean into a bulge on the side of Earth facing it, and a second bulge forms "
        "on the opposite side, so most coasts experience two high tides and two low tides roughly every "
        "twenty-five hours. When the Sun and Moon line up at new and full moon, the tides are especially "
        "large; these are called spring tides.",
    ),
    (
        "Where does the sun have to be for me to see a rainbow?",
        "A rainbow appears when sunlight shines into falling raindrops and is bent, reflected inside each "
        "drop and bent again as it leaves. Because each colour of light bends by a slightly different "
        "amount, white sunlight is spread into a band of colours, with red on the outside and violet on the "
        "inside. To see one, you must have the Sun behind you and rain in front of you, which is why "
        "rainbows are most common in the early morning and late afternoon.",
    ),
    (
        "Why is the sky blue at midday but orange and red at sunset?",
        "The sky looks blue because molecules in the atmosphere scatter short wavelengths of sunlight much "
        "more strongly than long ones, an effect known as Rayleigh scattering. Blue light is therefore "
        "bounced around the sky and reaches our eyes from every direction. At sunrise and sunset, sunlight "
        "passes through far more air before reaching us, so most of the blue is scattered away and the "
        "remaining light looks orange and red.",
    ),
    (
        "Which bases in DNA pair up with each other?",
        "DNA is the molecule that carries the genetic instructions of almost every living thing. Its "
        "structure, described in 1953, is a double helix: two long strands twisted around each other and "
        "held together by pairs of chemical bases, with adenine always pairing with thymine and cytosine "
        "with guanine. This pairing means each strand can act as a template for building a new partner, "
        "which is how genetic information is copied when cells divide.",
    ),
    (
        "How can I work out how far away a thunderstorm is?",
        "Lightning heats the air along its path to around 30,000 degrees Celsius in a fraction of a second, "
        "making the air expand so violently that it produces the shock wave we hear as thunder. Because "
        "light travels almost instantly while sound covers only about a kilometre every three seconds, you "
        "can estimate the distance of a storm by counting the seconds between the flash and the rumble and "
        "dividing by three.",
    ),
    (
        "Why shouldn't I take antibiotics for a cold?",
        "Antibiotic resistance develops when bacteria change in ways that allow them to survive the drugs "
        "designed to kill them. Every time antibiotics are used, the most susceptible bacteria die first, "
        "leaving behind any that happen to be tougher, which then multiply. Using antibiotics when they are "
        "not needed, for example for colds and flu, which are caused by viruses and are not affected by "
        "them, speeds this process up, as does their heavy use in livestock farming.",
    ),
    (
        "How do honeybees tell each other where to find flowers?",
        "When a honeybee forager finds a rich patch of flowers, she returns to the hive and performs a "
        "waggle dance on the vertical honeycomb. The angle of her straight waggling run relative to upward "
        "shows the direction of the food relative to the Sun, while the length of the run indicates how far "
        "away it is. Other workers follow her movements closely, then fly out to find the flowers "
        "themselves.",
    ),
    (
        "octopus neurons in arms",
        "Octopuses are among the most intelligent invertebrates. They can solve puzzles, unscrew jar lids to "
        "reach food and learn by watching other octopuses. Around two thirds of their neurons are located in "
        "their arms rather than the brain, so each arm can taste, touch and react to its surroundings with a "
        "degree of independence. They also change the colour and texture of their skin in a fraction of a "
        "second to hide from predators.",
    ),
    (
        "Where do monarch butterflies go for the winter?",
        "Each autumn, millions of monarch butterflies from eastern North America fly as far as 4,000 "
        "kilometres to spend the winter in the fir forests of the mountains of central Mexico. No single "
        "butterfly makes the round trip: the journey north in spring is completed over several generations, "
        "yet the great-grandchildren that fly south the following autumn find their way to the same forests. "
        "Scientists believe they navigate using the Sun and an internal clock.",
    ),
    (
        "microscopic animal survives space vacuum",
        "Tardigrades, sometimes called water bears, are microscopic animals with eight stubby legs that live "
        "in moss, soil and water all over the world. When their surroundings dry out, they curl into a "
        "dormant state, losing almost all their body water, and can survive like this for years. In that "
        "condition they have withstood extreme cold, intense radiation and even exposure to the vacuum of "
        "space before reviving when water returned.",
    ),
    (
        "Why do oak trees drop huge numbers of acorns only in certain years?",
        "A mature English oak can support more species of insect than almost any other native tree in "
        "Britain, along with birds, bats, fungi and lichens. Oaks grow slowly and may live for many "
        "centuries; some veteran trees are thought to be over a thousand years old. They do not produce "
        "large crops of acorns every year, instead having occasional bumper seasons, known as mast years, "
        "which may overwhelm the animals that eat the seeds.",
    ),
    (
        "What causes coral reefs to lose their colour and go white?",
        "Reef-building corals get most of their energy from tiny algae that live inside their tissues and "
        "give them their colour. When the sea becomes unusually warm for several weeks, the stressed corals "
        "expel these algae and turn white, a process known as bleaching. Bleached corals are not dead, and "
        "they can recover if temperatures fall quickly, but prolonged heat leaves them starving and "
        "vulnerable to disease.",
    ),
    (
        "How can I help hedgehogs get through the winter in my garden?",
        "Hedgehogs hibernate from about November to March, when the insects, beetles and worms they eat "
        "become scarce. During hibernation, their body temperature drops sharply and their heartbeat slows "
        "from around 190 beats per minute to as few as twenty. Gardeners can help by leaving piles of leaves "
        "and logs undisturbed and checking bonfire heaps before lighting them, as sleeping hedgehogs often "
        "shelter inside.",
    ),
    (
        "How is an English sonnet structured differently from an Italian one?",
        "The sonnet is a fourteen-line poem that first took shape in thirteenth-century Italy and was "
        "popularised by Petrarch, who divided it into an eight-line octave followed by a six-line sestet, "
        "often with a turn in the argument between them. When the form reached England in the sixteenth "
        "century, poets adapted it into three quatrains and a closing rhyming couplet, the pattern "
        "Shakespeare used in his 154 sonnets.",
    ),
    (
        "Japanese three-line poem rules",
        "The haiku is a short Japanese poetic form traditionally made up of three phrases of five, seven and "
        "five sound units. Classical haiku usually contain a seasonal reference, such as cherry blossom for "
        "spring or falling leaves for autumn, and a cutting word that creates a pause or contrast. Poets "
        "writing haiku in English often ignore the strict syllable count, since English syllables are longer "
        "than the Japanese units.",
    ),
    (
        "Which city is considered the birthplace of jazz?",
        "Jazz grew up in New Orleans in the early twentieth century, drawing on blues, ragtime, brass band "
        "marches and the rhythms of African American church music. The city's mix of cultures and its "
        "tradition of street parades and dance halls gave young musicians constant work. Early bands were "
        "built around a trumpet or cornet playing the melody, with clarinet and trombone weaving around it, "
        "and much of the music was improvised.",
    ),
    (
        "Is the Bayeux Tapestry woven or embroidered?",
        "Despite its name, the Bayeux Tapestry is not a tapestry at all but an embroidery, stitched in "
        "coloured wool on strips of linen. Nearly seventy metres long, it tells the story of the Norman "
        "conquest of England, ending with the Battle of Hastings in 1066. It was probably made in England "
        "within a few decades of the battle and is now displayed in a specially built museum in Bayeux, "
        "Normandy.",
    ),
    (
        "How did medieval craftsmen give church window glass its colours?",
        "Medieval stained glass was coloured while molten by adding metal oxides: copper for green and red, "
        "cobalt for blue. Craftsmen cut the cooled sheets into shapes, painted details such as faces and "
        "folds of cloth in a dark enamel that was fired onto the glass, and held the pieces together with "
        "strips of lead. The finished panels were then fixed into iron frames within the window openings of "
        "churches and cathedrals.",
    ),
    (
        "How is paper folding used by engineers and scientists?",
        "Origami, the Japanese art of paper folding, traditionally creates figures from a single square "
        "sheet without cutting or gluing. The best-known model is the crane, which in Japan is a symbol of "
        "long life; folding a thousand of them is said to bring good fortune. In recent decades, "
        "mathematicians and engineers have borrowed origami techniques to design folding solar panels for "
        "satellites and medical devices that open inside the body.",
    ),
    (
        "How does a tiebreak work in tennis?",
        "In most tennis matches, a set that reaches six games all is decided by a tiebreak. One player "
        "serves the first point, then the players alternate serves every two points, and the first to reach "
        "seven points with a margin of two wins the set. At the four Grand Slam tournaments, a final set "
        "that reaches six all is now settled by a longer tiebreak played to ten points.",
    ),
    (
        "first basketball goals",
        "Basketball was invented in December 1891 by James Naismith, a physical education teacher in "
        "Springfield, Massachusetts, who needed an indoor game to keep students active through the winter. "
        "The first games used a football and two peach baskets nailed to the balcony at each end of the gym. "
        "Because the baskets still had their bottoms, someone had to climb up and retrieve the ball after "
        "every score.",
    ),
    (
        "Test match length cricket",
        "A Test match is the longest form of international cricket, scheduled over up to five days with each "
        "team batting twice. A game can end in a win, a loss, a tie or a draw, and a draw is common when the "
        "team batting last survives until the close of the final day. Players traditionally wear white "
        "clothing and use a red ball, although some Tests are now played under floodlights with a pink ball.",
    ),
    (
        "What does all the sweeping in curling actually do?",
        "Curling is played on a sheet of ice by two teams of four, who take turns sliding heavy granite "
        "stones towards a circular target called the house. As a stone glides, teammates sweep the ice in "
        "front of it with brushes, which slightly warms the surface, making the stone travel further and "
        "curve less. Points are scored by the team whose stones finish closest to the centre once all "
        "sixteen stones have been delivered.",
    ),
    (
        "Can a player be offside straight from a throw-in?",
        "In football, a player is in an offside position if, when a teammate plays the ball to them, they "
        "are in the opponents' half and closer to the opposing goal line than both the ball and the "
        "second-last defender. Being in that position is not an offence in itself; the player is penalised "
        "only if they become involved in play. There is no offside from a goal kick, a throw-in or a corner "
        "kick.",
    ),
    (
        "What does the polka dot jersey mean in the Tour de France?",
        "At the Tour de France, the overall leader wears the yellow jersey, first introduced in 1919 so that "
        "spectators could pick him out in the pack. The green jersey goes to the leader of the points "
        "classification, usually a sprinter, while the white jersey with red dots marks the best climber in "
        "the mountains. The best young rider, under twenty-six, wears plain white.",
    ),
    (
        "How many jobs will the new Thornmouth recycling factory create?",
        "Verran Energy will open a battery recycling plant on the former steelworks site at Thornmouth, "
        "creating around 420 jobs, the company confirmed on Wednesday. The factory will recover lithium, "
        "nickel and cobalt from used electric car batteries and is due to begin operating in late 2026. "
        "Local leaders welcomed the investment in an area where unemployment remains well above the national "
        "average, though residents have asked for assurances about traffic and fire safety.",
    ),
    (
        "When will electricity be restored after the storm knocked out power to thousands of homes?",
        "Around 60,000 homes across the west of the region were left without electricity on Thursday night "
        "after Storm Hester brought gusts of more than 140 kilometres per hour. Fallen trees blocked several "
        "main roads, and the coastal rail line was closed after debris was blown onto the tracks. The "
        "network operator said most customers should be reconnected by Saturday, but warned that some rural "
        "properties could wait until early next week.",
    ),
    (
        "How was the painting taken from the Pellham Museum tracked down?",
        "A landscape stolen from the Pellham Museum of Art more than twenty years ago has been returned "
        "after it was recognised at a provincial auction house. The small oil painting, showing a harvest "
        "scene, was taken during a night-time break-in in 2003 along with two other works that remain "
        "missing. An auctioneer noticed that the frame bore the museum's old inventory number and contacted "
        "the police before the sale.",
    ),
    (
        "Brightcart customer data leak",
        "Online retailer Brightcart has written to around 1.2 million customers after discovering that "
        "hackers gained access to a database containing names, email addresses and delivery addresses. The "
        "company said no payment card details or passwords were exposed, as these are stored separately. "
        "Customers are nonetheless advised to be wary of emails claiming to come from Brightcart that ask "
        "them to click links or confirm personal information.",
    ),
    (
        "Why was there no tap water in Eastfield, Dunholt on Monday?",
        "Residents of Eastfield in Dunholt were without running water for most of Monday after a major water "
        "main burst beneath Station Road, flooding several shops and creating a sinkhole in the carriageway. "
        "The water company set up bottled water stations at the community centre and the supermarket car "
        "park. Supplies were restored by late evening, though some customers were told their water might "
        "look cloudy for a short while.",
    ),
    (
        "Which village bakery won the national prize for best independent baker?",
        "A family bakery in the village of Oxley Green has been named the country's best independent bakery "
        "at this year's National Bread Awards. Judges praised its seeded spelt loaf and its Bakewell-style "
        "tart, both made to recipes developed by the owner's grandmother. The bakery, which employs nine "
        "people, has been trading from the same premises since 1962 and still delivers bread to local homes "
        "by bicycle.",
    ),
    (
        "Does going for a walk after eating lower blood sugar?",
        "Researchers at the University of Halbrook have found that people who take a short walk after meals "
        "have noticeably lower blood sugar levels than those who stay seated. In a study of 180 adults, a "
        "fifteen-minute stroll after dinner reduced the rise in blood sugar by around a fifth compared with "
        "sitting. The team said the findings were especially relevant for people at risk of type 2 diabetes, "
        "though they stressed that larger trials were needed.",
    ),
    (
        "Why have the ferries to Rathmore island stopped running?",
        "Ferry crossings between Port Ellan and the island of Rathmore have been suspended for at least a "
        "week after the only vessel on the route failed its annual safety inspection. The operator said a "
        "replacement ship had been chartered but could not arrive before next Tuesday. In the meantime, "
        "islanders needing urgent hospital appointments will be flown to the mainland, and food deliveries "
        "will be brought over by a chartered cargo boat.",
    ),
    (
        "Which bin should glass go in under the new Oakfield collection scheme?",
        "From Monday 6 October, household recycling in the Oakfield district will be collected every two "
        "weeks instead of weekly, while food waste collections will move to a new weekly service. Each "
        "household will receive a small kitchen caddy and a larger outdoor bin with a lockable lid before "
        "the changeover. Glass should now go in the blue box rather than the green wheeled bin, and "
        "collection calendars will be posted to every address.",
    ),
    (
        "letter to the landlord about loud neighbours upstairs keeping me awake",
        "Dear Mrs Patel, I am writing about the flat above mine, number 14. For the past three weeks there "
        "has been loud music and banging most nights until two or three in the morning, and my requests to "
        "the tenants have not helped. I work early shifts and am finding it very difficult to sleep. I have "
        "kept a record of the dates and times and would be grateful if you could raise this with them as the "
        "landlord. Yours sincerely, Daniel Roe.",
    ),
    (
        "Harbourside Inn cancellation policy",
        "Thank you for booking with the Harbourside Inn. We are pleased to confirm a double room with sea "
        "view for two nights, arriving Friday 12 July and departing Sunday 14 July, with breakfast included. "
        "Check-in is from three o'clock and check-out by eleven. Free parking is available behind the hotel, "
        "but spaces are limited, so please let us know your car registration in advance. Cancellations made "
        "less than 48 hours before arrival will be charged one night.",
    ),
    (
        "Email asking a consultant to correct the hours on an invoice",
        "Hi Sam, thanks for sending invoice 2291 for the April consultancy work. I think there may be a "
        "mistake: it lists twenty-four hours at the standard rate, but our timesheets show twenty hours, and "
        "we agreed that travel time would not be billed separately. Could you please check this and send a "
        "revised invoice? Once I have it, I'll approve it straight away so that it goes into this month's "
        "payment run. Best wishes, Helen.",
    ),
    (
        "Will I get money off my bill for Tuesday's internet outage?",
        "Dear customer, we're sorry for the broadband outage that affected your area on Tuesday between 6 pm "
        "and 1 am. The problem was caused by damage to a fibre cable during roadworks by a third party, and "
        "our engineers worked through the night to repair it. Because the service was down for more than six "
        "hours, we have automatically added a credit of eight pounds to your next bill. You don't need to "
        "contact us to claim it.",
    ),
    (
        "forgotten password reset link",
        "To reset your password, select Forgot password on the sign-in screen and enter the email address "
        "linked to your account. We'll send a link that stays valid for thirty minutes. Your new password "
        "must be at least twelve characters long and cannot be one you have used before. If the email "
        "doesn't arrive within a few minutes, check your spam folder, and remember that our staff will never "
        "ask you to tell them your password.",
    ),
    (
        "Application letter for a library job from someone who runs research skills classes",
        "Dear Hiring Manager, I am applying for the position of Assistant Librarian advertised on your "
        "website. For the past four years I have worked at Westbury College library, where I manage the "
        "interlibrary loan service and run weekly research skills sessions for first-year students. I "
        "particularly enjoy helping people who find libraries intimidating, and I would welcome the chance "
        "to bring that experience to your community outreach programme. My CV is attached.",
    ),
    (
        "Reference letter for a heart ward nurse whose family is moving away",
        "I am pleased to recommend Leila Haddad, who worked as a senior nurse on our cardiology ward from "
        "2019 until this summer. Leila is calm under pressure, thorough in her record-keeping and trusted by "
        "patients and colleagues alike. During the pandemic she trained more than thirty redeployed staff in "
        "cardiac monitoring at short notice. She leaves us only because her family is relocating, and I "
        "would gladly employ her again.",
    ),
    (
        "Why was the quarterly planning meeting moved to Monday?",
        "Hi all, unfortunately I need to move Thursday's quarterly planning meeting, as the finance figures "
        "we need won't be ready until Friday morning. Let's meet instead on Monday 17th at 2 pm in the large "
        "conference room, or on the video link for anyone working remotely. The agenda stays the same, but "
        "please send me any updates to your team's slides by Friday afternoon so I can circulate the pack "
        "over the weekend. Thanks, Oliver.",
    ),
    (
        "thank-you email after an interview for a marketing job",
        "Dear Ms Alvarez, thank you for taking the time to meet me yesterday to discuss the marketing "
        "coordinator role. I enjoyed hearing about the plans to launch the new product range in Spain and "
        "Portugal, and our conversation confirmed how much I would like to be part of that work. As "
        "promised, I've attached the sample campaign plan I mentioned. Please let me know if you need "
        "anything further. Kind regards, Jonah Price.",
    ),
    (
        "Complaint about a family celebration meal where food came out cold",
        "We visited your restaurant last Saturday to celebrate my mother's seventieth birthday and were "
        "disappointed. Although we had booked a table eight weeks in advance, we waited forty minutes to be "
        "seated, two of the main courses arrived cold, and the birthday cake we had dropped off that morning "
        "had been forgotten in the kitchen. The staff were apologetic, but we felt the evening was spoiled, "
        "and we would appreciate a response from the manager.",
    ),
    (
        "supplier gift value limit",
        "Employees may accept small gifts from suppliers or customers, such as a box of chocolates or a "
        "diary, provided the value is below fifty pounds. Any gift or hospitality above that amount, and "
        "every offer of travel or accommodation, must be declared in the gifts register within five working "
        "days, whether or not it is accepted. Cash or vouchers must always be refused. If in doubt, please "
        "speak to the compliance team before saying yes.",
    ),
    (
        "Where do we gather outside during the fire drill?",
        "A fire evacuation drill will take place in the Bridgewater building next Wednesday morning. When "
        "the alarm sounds, leave by the nearest exit without stopping to collect belongings and do not use "
        "the lifts. Assemble at point B in the staff car park, where fire wardens in yellow vests will take "
        "a roll call. Colleagues with mobility needs who have a personal evacuation plan should follow it, "
        "and anyone unsure should contact Facilities this week.",
    ),
    (
        "What should I do with a suspicious email asking for my bank details for payroll?",
        "IT Security has seen a rise in phishing emails that appear to come from our payroll provider and "
        "ask staff to confirm their bank details. These messages are fake. Payroll will never ask you to "
        "update your details by email; changes can only be made through the HR portal after signing in. If "
        "you receive a suspicious message, use the Report button in your mail client rather than forwarding "
        "it, and do not click any links it contains.",
    ),
    (
        "By when do we have to pack up our desks for the office relocation?",
        "Our London team will move from Cannon Street to the new office at Riverside Place over the weekend "
        "of 21 and 22 June. Please pack your desk into the crates provided by Thursday evening, label them "
        "with your name and new desk number, and take home any personal items you want to keep safe. IT will "
        "reconnect all equipment over the weekend, and the new building will be ready for work from Monday "
        "morning, with free breakfast on the first day.",
    ),
    (
        "Am I allowed to wear jeans to the office on Fridays?",
        "Our dress code is business casual from Monday to Thursday: tidy trousers or skirts, shirts, blouses "
        "or smart knitwear, with no requirement to wear a tie or suit. On Fridays, jeans and trainers are "
        "welcome, provided they are clean and in good condition. Staff meeting clients, whether on site or "
        "at their offices, should dress more formally on those days. Clothing displaying slogans or "
        "offensive images is not permitted at any time.",
    ),
    (
        "How can I report misconduct at work without giving my name?",
        "Anyone who suspects fraud, safety breaches, bribery or other serious wrongdoing at work is "
        "encouraged to speak up under our whistleblowing policy. Concerns can be raised with a manager, with "
        "the company secretary, or anonymously through an independent hotline run by an external provider, "
        "which is available in eleven languages around the clock. Staff who raise a genuine concern in good "
        "faith will be protected from any form of retaliation, even if the concern turns out to be mistaken.",
    ),
    (
        "Why is a burr coffee grinder better than one with a blade?",
        "The Morrow Burr Grinder uses a pair of conical steel burrs to crush beans to a consistent size, "
        "rather than chopping them unevenly as blade grinders do. Thirty-one settings range from a fine "
        "powder for espresso to a coarse grind for cafetière and cold brew. A timer dial lets you grind the "
        "same amount each morning, and the removable upper burr makes cleaning simple. The hopper holds 250 "
        "grams of beans.",
    ),
    (
        "Are the Fellside Trek boots waterproof?",
        "I've walked about 300 kilometres in the Fellside Trek boots, including a week of wet weather in the "
        "hills, and my feet have stayed dry throughout. They needed almost no breaking in, and the wide toe "
        "box is a relief after years of narrower brands. The soles grip well on rock and mud, although they "
        "were a little slippery on wet wooden boardwalks. My only criticism is that the laces frayed after a "
        "couple of months.",
    ),
    (
        "wool blanket washing instructions",
        "Woven in a small mill in the Welsh borders from the fleece of local sheep, this blanket is made to "
        "last for decades. The wool is left undyed, so each one varies slightly in colour, from cream to "
        "soft grey. It measures 150 by 200 centimetres, large enough for a single bed or to throw over a "
        "sofa. To care for it, air it outdoors regularly and wash it only occasionally, by hand, in cool "
        "water.",
    ),
    (
        "How do I stop my cast iron skillet from going rusty?",
        "A cast iron pan becomes more non-stick the more you use it, as thin layers of oil bake onto the "
        "surface, a process known as seasoning. After cooking, wash it with hot water and a brush, dry it "
        "thoroughly over a low flame and wipe in a few drops of oil. Avoid leaving it to soak, because "
        "standing water causes rust, and never put it in the dishwasher. If rust does appear, scrub it off "
        "and re-season the pan in the oven.",
    ),
    (
        "Is the Pulse S3 watch any good at tracking sleep?",
        "The Pulse S3 is a capable fitness watch with one major flaw. Its heart-rate and GPS tracking were "
        "accurate on my runs, matching a chest strap closely, and the bright screen is easy to read in "
        "sunshine. Sleep tracking, though, seemed to be guesswork: on several nights it recorded me as "
        "asleep while I was reading in bed. Battery life is excellent at around nine days, and the strap is "
        "comfortable enough to wear overnight.",
    ),
    (
        "What is the best number of players for the Harbour Lights board game?",
        "In Harbour Lights, two to four players compete to guide cargo ships safely into port, placing "
        "lanterns along a shifting coastline built from hexagonal tiles. The rules take about twenty minutes "
        "to learn, and a game lasts around an hour. What lifts it above similar titles is the weather deck, "
        "which can wreck a carefully planned route at the last moment and produces plenty of groans and "
        "laughter. It works best with three players.",
    ),
    (
        "Cityglide e-bike range",
        "The Cityglide E2 is a folding electric bike designed for commuters who combine cycling with train "
        "journeys. It folds in about fifteen seconds into a package small enough to carry onto a crowded "
        "carriage, although at seventeen kilograms you won't want to lift it far. The motor gives a gentle "
        "boost up to the legal limit of 25 km/h, and the removable battery offers a range of roughly fifty "
        "kilometres, depending on hills and rider weight.",
    ),
    (
        "Review of a novel about three sisters who go back to an apple farm",
        "The Salt Orchard, the second novel by Orla Vantreight, follows three sisters who return to the "
        "family's failing apple farm on the coast after their father's death. Vantreight writes beautifully "
        "about landscape and weather, and the middle section, set during a disastrous harvest, is gripping. "
        "The ending, however, resolves the sisters' long-running quarrel too neatly, as though the author "
        "had run out of patience with her characters.",
    ),
    (
        "Lisbon tram 28 tips",
        "Lisbon's yellow trams are both a practical way to climb the city's steep hills and one of its "
        "best-loved sights. Route 28 winds through the narrow streets of Graça, Alfama, Baixa and Estrela, "
        "passing close to the cathedral and several viewpoints. It is very crowded in summer, so board early "
        "in the morning or at the Martim Moniz terminus, where you are more likely to get a seat, and keep "
        "an eye on your wallet, as pickpockets work the busiest cars.",
    ),
    (
        "Kyoto autumn foliage season",
        "Kyoto is at its most beautiful in late November, when the maples in its temple gardens turn "
        "brilliant shades of red and orange. Popular spots such as Tofuku-ji and the hillsides around "
        "Kiyomizu-dera become extremely busy, so it pays to arrive at opening time. Several temples hold "
        "special evening openings during the season, lighting up the foliage after dark, and hotel prices "
        "rise sharply, so book well in advance.",
    ),
    (
        "When is the right time to buy holiday insurance?",
        "Before buying travel insurance, check that it covers medical treatment and repatriation in every "
        "country you plan to visit; the cheapest policies sometimes exclude the United States or winter "
        "sports. Declare any existing medical conditions, even ones that seem minor, because an undisclosed "
        "condition can invalidate a claim. It is also worth buying the policy as soon as you book your trip, "
        "so that you are covered if you have to cancel before you travel.",
    ),
    (
        "carry-on only packing tips",
        "Travelling with only a cabin bag saves time at the airport and money on fees, and it is easier than "
        "many people think. Plan outfits around two or three colours so that every item goes with the "
        "others, and roll clothes rather than folding them to reduce creases. Wear your bulkiest shoes and "
        "jacket on the plane. Most hotels and guest houses can provide laundry, so a week's worth of clothes "
        "is enough for a trip of any length.",
    ),
    (
        "Where can I stay on Rathmore with a view of the sea?",
        "Seal Bay House is a four-room guest house on the western shore of Rathmore, a short walk from the "
        "ferry pier. Every room looks out over the bay, and breakfast features eggs from the owners' hens "
        "and bread baked each morning. There is no television or Wi-Fi in the rooms, only in the lounge, "
        "which guests say adds to the peace. The house is closed from November to March.",
    ),
    (
        "Is a sleeper train a good alternative to flying around Europe?",
        "Night trains are enjoying a revival across Europe as travellers look for alternatives to short "
        "flights. A sleeper service lets you board in the evening, sleep in a couchette or private cabin, "
        "and arrive in a city centre the next morning, saving both a hotel night and the journey to and from "
        "airports. Cabins with a private shower sell out quickly in summer, so book as soon as tickets are "
        "released, often three to six months ahead.",
    ),
    (
        "Which kind of rice should I use for risotto?",
        "The secret to a creamy risotto lies in the rice and in patience. Use a short-grain variety such as "
        "arborio or carnaroli, toast it briefly in butter with softened onion, then add hot stock a ladleful "
        "at a time, stirring often and letting each addition be absorbed before adding the next. After about "
        "eighteen minutes, the grains should be tender with a slight bite. Finish off the heat with butter "
        "and grated parmesan.",
    ),
    (
        "soft-boiled egg cooking time",
        "For eggs with set whites and runny yolks, lower them straight from the fridge into boiling water "
        "and cook for six and a half minutes, then cool them under cold running water. For firm yolks that "
        "are still bright yellow, allow ten minutes. Overcooking produces a grey-green ring around the yolk, "
        "caused by a reaction between sulphur in the white and iron in the yolk. Very fresh eggs are harder "
        "to peel, so use ones that are a week old.",
    ),
    (
        "whetstone sharpening angle",
        "A whetstone gives a kitchen knife a far keener edge than a pull-through sharpener. Soak the stone "
        "for ten minutes if it is water-based, then hold the blade at a steady angle of about fifteen to "
        "twenty degrees and draw it across the coarse side in smooth strokes, working along the whole edge. "
        "Turn the knife over and repeat, then move to the finer side to polish. A honing steel between "
        "sharpenings keeps the edge aligned.",
    ),
    (
        "How long does homemade chicken broth keep in the fridge?",
        "Homemade chicken stock costs almost nothing and tastes far better than cubes. Put a roast chicken "
        "carcass in a large pan with an onion, a carrot, a stick of celery, a bay leaf and a few "
        "peppercorns, cover with cold water and bring slowly to a simmer. Skim off any foam, then let it "
        "bubble very gently for three hours without stirring. Strain, cool quickly and refrigerate; it will "
        "keep for four days or freeze for three months.",
    ),
    (
        "crepe batter quantities",
        "Thin pancakes, or crêpes, need a batter about the consistency of single cream. Whisk 100 grams of "
        "plain flour with two eggs, then gradually beat in 300 millilitres of milk until smooth, and leave "
        "it to rest for half an hour. Heat a little butter in a frying pan until very hot, pour in just "
        "enough batter to coat the base, swirling it quickly, and cook for a minute on each side. The first "
        "one is usually a disaster, so don't worry.",
    ),
    (
        "Should tomatoes be kept in the fridge?",
        "Ripe tomatoes taste best when kept at room temperature, out of direct sunlight, and eaten within a "
        "few days. Refrigeration below about twelve degrees damages the compounds responsible for their "
        "aroma and can make the flesh mealy. Unripe tomatoes will continue to ripen on a windowsill or in a "
        "paper bag with a banana, which gives off ethylene gas. Only put tomatoes in the fridge if they are "
        "very ripe and you cannot use them in time.",
    ),
    (
        "What can I do if I can't fall asleep at night?",
        "If you struggle to get to sleep, try going to bed and getting up at the same times every day, "
        "including weekends, to steady your body clock. Keep the bedroom cool, dark and quiet, and avoid "
        "caffeine after lunchtime, since its effects can last for many hours. Screens are best put away an "
        "hour before bed. If you are still awake after about twenty minutes, get up and do something calm in "
        "dim light until you feel sleepy again.",
    ),
    (
        "What does SPF on sun cream actually measure?",
        "The SPF number on a sunscreen measures protection against UVB rays, the main cause of sunburn, "
        "while a separate rating, often shown as stars or a UVA logo, indicates protection against the UVA "
        "rays that age the skin. Dermatologists generally recommend at least SPF 30 and applying it "
        "generously, about six teaspoons for an adult's whole body. Reapply every two hours and after "
        "swimming, even if the product says it is water resistant.",
    ),
    (
        "How can I tell whether I am drinking enough water?",
        "Most healthy adults can judge how much to drink simply by responding to thirst and checking the "
        "colour of their urine, which should be pale straw. Water is the best choice, but tea, coffee, milk "
        "and the water in food all contribute to your daily intake. You need more in hot weather, during "
        "exercise and when you have a fever, vomiting or diarrhoea. Older people may feel thirst less "
        "strongly, so they should drink at regular intervals.",
    ),
    (
        "How should I set up my office chair to avoid back ache?",
        "Lower back pain among office workers is often linked to long periods of sitting in the same "
        "position rather than to any single injury. Set your chair so that your feet rest flat on the floor "
        "and your hips are slightly higher than your knees, and position the top of the screen at eye level. "
        "Most importantly, stand up and move around every thirty to forty-five minutes. Gentle walking is "
        "usually better for back pain than bed rest.",
    ),
    (
        "What commonly sets off a migraine?",
        "A migraine is more than a bad headache: it often involves throbbing pain on one side of the head, "
        "nausea and sensitivity to light and sound, and some people see flashing lights or zigzag lines "
        "beforehand, known as an aura. Common triggers include missed meals, poor sleep, stress, dehydration "
        "and hormonal changes. Keeping a diary of attacks for a couple of months can help identify patterns "
        "and guide treatment with your doctor.",
    ),
    (
        "pollen allergy remedies",
        "Hay fever is an allergic reaction to pollen, usually from grass in early summer, though tree pollen "
        "causes symptoms in spring and weed pollen later in the year. Sneezing, an itchy or blocked nose and "
        "watery eyes are typical. Antihistamine tablets and steroid nasal sprays, available from pharmacies, "
        "work best when started before the season begins. On high-pollen days, keep windows closed, shower "
        "after being outside and dry washing indoors.",
    ),
    (
        "Story about a young woman who finds an old letter tucked inside a borrowed book",
        "The letter fell out of the library book as Nadia turned to the first chapter: a single sheet, "
        "folded twice, dated June 1987. It was addressed to someone called Frances and began with an apology "
        "for a missed train and a broken promise. Nadia read it standing at the returns desk, then read it "
        "again. She checked the book's lending record, which went back decades, and found that it had last "
        "been borrowed by an F. Hale.",
    ),
    (
        "short story about an old man who plays chess with a young girl in the park",
        "Every afternoon at three, Mr Adebayo set up his chessboard on the stone table by the fountain and "
        "waited. Most days nobody came, and he played both sides, muttering. Then, one wet Tuesday in "
        "October, a girl of about ten sat down opposite him without a word and moved her king's pawn two "
        "squares. She lost in twenty minutes. She came back the next day, and the one after that, and by "
        "spring she was winning.",
    ),
    (
        "Story of a fisherman racing back to port in rough weather",
        "The wind turned just after noon, and by the time Callum had hauled in the last of the pots, the sea "
        "was heaving in long grey ridges. He pointed the boat's bow towards the harbour mouth and counted "
        "the waves, waiting for the gap between the big ones, as his grandfather had taught him. When it "
        "came, he opened the throttle and ran for it, the stern lifting beneath him and the harbour wall "
        "rising dark and close on his left.",
    ),
    (
        "story about two strangers who talk for hours when their train breaks down",
        "Somewhere after the border the train stopped in a field and stayed there. The woman opposite Pieter "
        "produced a flask of coffee and two paper cups, as if she had been expecting it, and offered him "
        "one. They talked, hesitantly at first, about the weather, then about their children, then about "
        "things he had never told his wife. When the train finally lurched forward two hours later, they "
        "both fell silent, and at the next station she got off without saying goodbye.",
    ),
)
